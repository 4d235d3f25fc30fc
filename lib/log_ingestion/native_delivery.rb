# frozen_string_literal: true

module LogIngestion
  # One native engine of this process and its error reporter: forwards calls to
  # LogIngestion::Native::Engine and turns its answers into the Ruby API's shapes.
  # Owns the engine's lifetime; never sleeps or waits on the caller's thread except
  # in the calls documented to block (flush, send_log, shutdown), and starts no Ruby
  # thread until one of those or a failure needs the reporter's (ErrorReporter).
  class NativeDelivery
    EMPTY_STATS = {
      enqueued: 0, sent: 0, dropped_queue_full: 0, dropped_retries_exhausted: 0,
      dropped_unauthorized: 0, dropped_invalid: 0, retried: 0, rejected_by_server: 0,
      failed_batches: 0, dropped_internal: 0, dropped_at_shutdown: 0, bytes_queued: 0,
      batches_in_flight: 0, rate_limited_until: nil,
      last_error: nil
    }.freeze

    def initialize(configuration)
      Native.load!
      @engine = Native::Engine.new(configuration.to_engine_hash)
      @on_error = configuration.on_error
      @reporter = ErrorReporter.new(@engine, @on_error)
      @closed = false
    end

    def pid
      @engine.pid
    end

    def enqueue(level, message, metadata)
      taken = @engine.enqueue(level, message, metadata)
      LogIngestion.booting? ? @reporter.poll : @reporter.start
      taken
    end

    # The server's answer ({"accepted" => 1, "status" => ..., "attempts" => ...}), or nil
    # when the entry was not delivered (the failure goes to on_error).
    def send_log(entry, timeout)
      @reporter.start # blocks: a Ruby thread must service signals meanwhile (see ErrorReporter)
      answer = @engine.send_log(entry, timeout.to_f)
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
      return { delivered: 0, undelivered: 0 } if @closed

      @closed = true
      @reporter.start
      report = @engine.shutdown(timeout.to_f).to_h { |key, value| [key.to_sym, value] }
      @reporter.stop
      report
    end

    def stats
      stats = EMPTY_STATS.merge(@engine.stats.to_h { |key, value| [key.to_sym, value] })
      until_epoch = stats[:rate_limited_until]
      stats[:rate_limited_until] = Time.at(until_epoch).utc if until_epoch.is_a?(Numeric)
      stats
    end
  end
end
