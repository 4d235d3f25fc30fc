# frozen_string_literal: true

require "active_support/concern"
require "log_ingestion/context"
require "log_ingestion/failsafe"
require "log_ingestion/stopwatch"
require "log_ingestion/rails/parameter_filter"
require "log_ingestion/rails/exception_entry"

module LogIngestion
  # ActiveJob concern: one entry per run of a job, sent when the run ends:
  #
  #   INFO "ExportJob performed"  kind: "job", job_class, job_id, queue, arguments
  #        (filtered), duration_ms, outcome, enqueued_by_request_id, executions
  #
  # outcome: "performed"; "failed" (an exception escaped: ERROR, and the exception is
  # its own entry, ExceptionEntry); "retried" (retry_on enqueued it again: WARN);
  # "discarded" (discard_on or rescue_from handled the exception: WARN); "aborted" (a
  # before_perform callback halted it). A run that was not performed carries
  # `exception_class`. Enqueuing sends nothing.
  #
  # The Railtie includes it into ActiveJob::Base (config.log_ingestion.job_entries,
  # default true) before JobContext, so the entry is sent in the job's Context (it
  # carries parent_request_id/parent_job_id; enqueued_by_request_id is the request that
  # enqueued it). Usable alone, per job class: `include LogIngestion::JobEntries`.
  #
  # Owns: the run's outcome and its entry. Never changes the job's arguments or result,
  # never swallows an exception of the job, never raises one of its own (the entry is
  # built in Failsafe).
  module JobEntries
    extend ActiveSupport::Concern

    KIND = "job"
    LEVELS = { "performed" => "INFO", "aborted" => "INFO", "retried" => "WARN", "discarded" => "WARN",
               "failed" => "ERROR" }.freeze

    included do
      around_perform :log_ingestion_note_exception
      after_enqueue :log_ingestion_note_retry
    end

    def perform_now
      # Nested runs (perform_now inside perform) each keep their own notes.
      saved = [@log_ingestion_run_exception, @log_ingestion_retried, @log_ingestion_aborted]
      @log_ingestion_run_exception = nil
      @log_ingestion_retried = @log_ingestion_aborted = false
      @log_ingestion_running = true
      started = Stopwatch.now_ms
      escaped = nil
      begin
        super
      rescue Exception => e # rubocop:disable Lint/RescueException -- noted, then re-raised unchanged
        escaped = e
        raise
      ensure
        @log_ingestion_running = false
        Failsafe.run(:job_entries) { log_ingestion_job_entry(started, escaped) }
        @log_ingestion_run_exception, @log_ingestion_retried, @log_ingestion_aborted = saved
      end
    end

    private

    # Inside the perform callbacks (and Rails' perform.active_job instrumentation): the
    # exception is noted before ActiveJob logs "Error performing ...", so that line,
    # which repeats the entries, is not forwarded.
    def log_ingestion_note_exception
      yield
    rescue Exception => e # rubocop:disable Lint/RescueException -- noted, then re-raised unchanged
      @log_ingestion_run_exception = e
      context = Context.current
      context.logged_exception ||= e if context
      raise
    end

    def log_ingestion_note_retry
      @log_ingestion_retried = true if @log_ingestion_running
    end

    # ActiveSupport::Callbacks' hook for a halted before_perform (documented for overriding).
    def halted_callback_hook(*)
      super
      @log_ingestion_aborted = true if @log_ingestion_running
    end

    # The job's arguments, masked by key (config.filter_parameters); a record (or any
    # GlobalID object) as its GlobalID, never its attributes. None for a job that turns
    # off Rails' own argument logging (`self.log_arguments = false`): positional values
    # have no key to be masked by.
    def log_ingestion_arguments
      return nil unless self.class.log_arguments?

      values = arguments.map { |value| value.respond_to?(:to_global_id) ? value.to_global_id.to_s : value }
      ParameterFilter.current.filter(values)
    end

    def log_ingestion_outcome(escaped)
      return "failed" if escaped
      return "retried" if @log_ingestion_retried
      return "discarded" if @log_ingestion_run_exception
      return "aborted" if @log_ingestion_aborted

      "performed"
    end

    def log_ingestion_job_entry(started, escaped)
      outcome = log_ingestion_outcome(escaped)
      parent = respond_to?(:log_ingestion_context_fields) ? log_ingestion_context_fields[:parent_request_id] : nil
      metadata = {
        kind: KIND, job_class: self.class.name, job_id: job_id, queue: queue_name,
        arguments: log_ingestion_arguments, duration_ms: Stopwatch.elapsed_ms(started),
        outcome: outcome, executions: executions, enqueued_by_request_id: parent
      }
      exception = escaped || @log_ingestion_run_exception
      metadata[:exception_class] = exception.class.name if exception
      level = LEVELS.fetch(outcome)
      ::LogIngestionClient.log(level, "#{self.class.name} #{outcome}", metadata.compact)
      return unless escaped

      ExceptionEntry.log(escaped, "ERROR", { job_class: self.class.name, job_id: job_id, queue: queue_name })
      # The exception goes on into whatever ran the job (a request, for an inline
      # job), where Rails reports it again ("Failed enqueuing ...").
      outer = Context.current&.outer
      while outer
        outer.logged_exception ||= escaped
        outer = outer.outer
      end
    end
  end
end
