# frozen_string_literal: true

module LogIngestion
  # Hands delivery failures to the `on_error` callback on a Ruby thread of its own:
  # it takes the engine's pending error reports and calls the handler, then sleeps
  # POLL_SECONDS in Kernel#sleep. Owns that thread; it never runs a callback on a
  # native thread and never lets a failing callback stop reporting.
  #
  # Why it sleeps in Ruby instead of blocking in the engine: in Ruby 3.1 a signal
  # (Ctrl-C) reaches a thread that waits without the GVL (e.g. the main thread in
  # `flush`) only through a Ruby thread that services the signal pipe, which a thread
  # in Kernel#sleep does. A reporter blocked in native code would leave nobody to
  # deliver Ctrl-C to a flushing main thread.
  class ErrorReporter
    POLL_SECONDS = 0.2

    # The handler used when `on_error` is not set: a warning on the gem's own logger
    # (never Rails.logger, so nothing can recurse into the client).
    DEFAULT_HANDLER = lambda do |report|
      LogIngestion.logger.warn(
        "log_ingestion: #{report[:kind]}: #{report[:message]} (#{report[:entries_lost]} entries lost)"
      )
    end

    def self.handle(handler, report)
      (handler || DEFAULT_HANDLER).call(report)
    rescue StandardError => e
      LogIngestion.logger.error("log_ingestion: on_error handler raised #{e.class}: #{e.message}")
    end

    def initialize(engine, handler)
      @engine = engine
      @handler = handler
      @reported_by_ruby = Thread::Queue.new
      @stopping = false
      @thread = Thread.new { run }
      @thread.name = "log_ingestion-reporter" if @thread.respond_to?(:name=)
    end

    # Hands a failure seen by the Ruby side (e.g. send_log's) to the reporter thread.
    def report(report)
      @reported_by_ruby << report
      wake
    end

    # Reports what is left and stops the thread (after the engine was shut down).
    def stop(grace = 2.0)
      @stopping = true
      wake
      return if @thread.join(grace)

      @thread.kill
      @thread.join(grace)
    end

    private

    def wake
      @thread.wakeup
    rescue ThreadError
      nil # it already ended
    end

    def run
      Thread.current.report_on_exception = false
      loop do
        report = next_report
        if report
          self.class.handle(@handler, report)
        elsif @stopping
          break
        else
          sleep POLL_SECONDS
        end
      end
    rescue StandardError => e
      LogIngestion.logger.error("log_ingestion: error reporter stopped: #{e.class}: #{e.message}")
    end

    def next_report
      @reported_by_ruby.pop(true)
    rescue ThreadError
      report = @engine.next_error(0.0)
      report && symbolize(report)
    end

    def symbolize(report)
      report.to_h { |key, value| [key.to_sym, value] }
    end
  end
end
