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
  #
  # The thread starts on first use, not with the engine: at the first log call, a
  # report handed over, or a call that blocks (flush, send_log, shutdown) -- except
  # that a log call made while the app boots (LogIngestion.booting?, set by the
  # Railtie) only polls: it asks the engine for a waiting report at most every
  # POLL_SECONDS and starts the thread only when there is one. So the master of a Puma
  # cluster, which logs "Rails application started" while preloading the app and then
  # forks, starts no Ruby thread, and Puma's "Thread(s) started in app boot" warning
  # never names this one; each worker starts its own at its first log call.
  class ErrorReporter
    POLL_SECONDS = 0.2

    # The handler used when `on_error` is not set: a warning on the gem's own logger
    # (never Rails.logger, so nothing can recurse into the client). An outage is two
    # such lines: kind "outage" when delivery starts failing, "recovered" when it
    # recovers (neither loses entries, so neither names a count of lost entries).
    DEFAULT_HANDLER = lambda do |report|
      lost = report[:entries_lost].to_i
      LogIngestion.logger.warn(
        "log_ingestion: #{report[:kind]}: #{report[:message]}#{" (#{lost} entries lost)" if lost.positive?}"
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
      @thread = nil
      @start_lock = Mutex.new
      @next_poll = 0.0
    end

    # Whether the thread has been started.
    def started?
      !@thread.nil?
    end

    # Starts the thread unless it runs already. Idempotent, thread-safe.
    def start
      return if @thread

      @start_lock.synchronize do
        next if @thread

        thread = Thread.new { run }
        thread.name = "log_ingestion-reporter" if thread.respond_to?(:name=)
        @thread = thread
      end
    end

    # Called by log calls: at most every POLL_SECONDS, one non-blocking look at the
    # engine's reports; a report found there starts the thread. Costs a clock read
    # otherwise; nothing once the thread runs.
    def poll
      return if @thread

      now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      return if now < @next_poll

      @next_poll = now + POLL_SECONDS
      report = @engine.next_error(0.0) or return
      @reported_by_ruby << symbolize(report)
      start
    end

    # Hands a failure seen by the Ruby side (e.g. send_log's) to the reporter thread.
    def report(report)
      @reported_by_ruby << report
      start
      wake
    end

    # Reports what is left and stops the thread (after the engine was shut down).
    def stop(grace = 2.0)
      @stopping = true
      start
      wake
      return if @thread.join(grace)

      @thread.kill
      @thread.join(grace)
    end

    private

    def wake
      @thread&.wakeup
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
