# frozen_string_literal: true

module LogIngestion
  # The delivery of this process outside test mode: one native engine
  # (LogIngestion::Native::Engine, the binding of log_ingestion_engine::Engine) and its
  # error reporter; turns the engine's answers into the Ruby API's shapes. Owns the
  # engine's lifetime; never sleeps or waits on the caller's thread except in the calls
  # documented to block (flush, send_log, shutdown), and starts no Ruby thread until one
  # of those or a failure needs the reporter's (ErrorReporter).
  class EngineDelivery
    # The stats of a client with no running engine: the engine's own keys (one list, in
    # the engine's Stats::fields), all zero; {} when the native extension cannot load.
    def self.idle_stats
      return {} unless Native.available?

      Native.idle_stats.to_h { |key, value| [key.to_sym, value] }
    end

    def initialize(configuration)
      Native.load!
      # Checked again here: the engine trusts its settings, and the configuration object
      # may have been changed since configure checked it (it is the caller's own).
      @engine = Native::Engine.new(configuration.validate!.to_engine_hash)
      @on_error = configuration.on_error
      @reporter = ErrorReporter.new(@engine, @on_error)
      @closed = false
      @reporter_started = false
    end

    def pid
      @engine.pid
    end

    # True when queued, false when dropped, nil when this engine belongs to the process
    # this one was forked from without Process._fork (the engine's answer; see ForkHook).
    def enqueue(level, message, metadata)
      taken = @engine.enqueue(level, message, metadata)
      start_or_poll_reporter unless @reporter_started || taken.nil?
      taken
    end

    # The server's answer ({"accepted" => 1, "status" => ..., "attempts" => ...}), or nil
    # when the entry was not delivered (the failure goes to on_error, its kind one of the
    # engine's ErrorKind names). retries: false makes one attempt (Engine#send_once).
    def send_log(entry, timeout, retries: true)
      @reporter.start # blocks: a Ruby thread must service signals meanwhile (see ErrorReporter)
      answer = retries ? @engine.send_log(entry, timeout.to_f) : @engine.send_once(entry, timeout.to_f)
      return answer unless answer.key?("error")

      @reporter.report(kind: answer["kind"], message: answer["error"], entries_lost: 1)
      nil
    end

    # Hands a failure seen on the Ruby side to on_error, on the reporter's thread.
    def report(report)
      @reporter.report(report)
    end

    def flush(timeout)
      @reporter.start
      @engine.flush(timeout.to_f)
    end

    # Delivers what is queued within +timeout+ and stops the engine's threads; the
    # reporter hands the last reports (undelivered entries included) to on_error
    # before it stops. Idempotent.
    def shutdown(timeout)
      return { delivered: 0, undelivered: 0, spooled: 0 } if @closed

      @closed = true
      @reporter.start
      report = @engine.shutdown(timeout.to_f).to_h { |key, value| [key.to_sym, value] }
      @reporter.stop
      report
    end

    # The stats whose values are times (epoch seconds from the engine, Time here).
    TIME_STATS = %i[rate_limited_until last_error_at last_success_at].freeze

    def stats
      stats = @engine.stats.to_h { |key, value| [key.to_sym, value] }
      TIME_STATS.each do |key|
        epoch = stats[key]
        stats[key] = Time.at(epoch).utc if epoch.is_a?(Numeric)
      end
      stats
    end

    private

    # While the app boots only a poll (see ErrorReporter); afterwards the reporter's
    # thread is started once and later log calls skip this call altogether.
    def start_or_poll_reporter
      if LogIngestion.booting?
        @reporter.poll
      else
        @reporter.start
        @reporter_started = true
      end
    end
  end

  # The former name of EngineDelivery ("Native" now names only the extension's layer).
  NativeDelivery = EngineDelivery
  deprecate_constant :NativeDelivery
end
