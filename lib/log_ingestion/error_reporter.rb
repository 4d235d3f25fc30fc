# frozen_string_literal: true

module LogIngestion
  # Hands delivery failures to the `on_error` callback on a Ruby thread of its own:
  # it waits for the engine's next error report (without the GVL, interruptible) and
  # calls the handler. Owns that thread; it never runs a callback on a native thread
  # and never lets a failing callback stop reporting.
  class ErrorReporter
    POLL_SECONDS = 1.0

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
      @stopping = false
      @thread = Thread.new { run }
      @thread.name = "log_ingestion-reporter" if @thread.respond_to?(:name=)
    end

    # Reports what is left and stops the thread (after the engine was shut down).
    def stop(grace = 2.0)
      @stopping = true
      return if @thread.join(grace)

      @thread.kill
      @thread.join(grace)
    end

    private

    def run
      Thread.current.report_on_exception = false
      loop do
        report = @engine.next_error(@stopping ? 0.0 : POLL_SECONDS)
        if report
          self.class.handle(@handler, symbolize(report))
        elsif @stopping
          break
        end
      end
    rescue StandardError => e
      LogIngestion.logger.error("log_ingestion: error reporter stopped: #{e.class}: #{e.message}")
    end

    def symbolize(report)
      report.to_h { |key, value| [key.to_sym, value] }
    end
  end
end
