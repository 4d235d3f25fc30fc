# frozen_string_literal: true

require "active_support/concern"
require "log_ingestion/context"

module LogIngestion
  # ActiveJob concern that runs each job in its own Context (`job_id`, `job_class`,
  # and `parent_request_id` / `parent_job_id`: the request -- or the job -- that
  # enqueued it), so every entry the job sends, from `perform` or anything it calls,
  # carries them -- also when the job runs in another process (a worker).
  #
  # The parent ids travel in the job's serialized payload under PAYLOAD_KEY, through
  # ActiveJob's documented extension point (`serialize`/`deserialize` calling super).
  # The Railtie includes it into ActiveJob::Base (`config.log_ingestion.job_context`,
  # default true); it can be included per job class instead.
  #
  # Owns: that payload key and the job's Context. Never changes the job's arguments
  # or other payload keys, never fails a job: a payload without the key (enqueued
  # before the gem was added, or by another app) runs without parent ids.
  module JobContext
    extend ActiveSupport::Concern

    PAYLOAD_KEY = "log_ingestion"

    included do
      before_enqueue :log_ingestion_capture_parent
    end

    # The whole run -- ActiveJob's own "Performing"/"Performed" lines and the
    # perform.active_job instrumentation included, which wrap the perform callbacks --
    # happens in the job's Context. A job run with perform_now (never enqueued) takes
    # the running request or job as its parent.
    def perform_now
      log_ingestion_capture_parent
      Context.with(**log_ingestion_context_fields) { super }
    end

    # The ids this job's entries carry (job_id, job_class, parent_request_id, parent_job_id).
    def log_ingestion_context_fields
      {
        job_id: job_id, job_class: self.class.name,
        parent_request_id: @log_ingestion_parent_request_id, parent_job_id: @log_ingestion_parent_job_id
      }
    end

    def serialize
      parents = { "parent_request_id" => @log_ingestion_parent_request_id,
                  "parent_job_id" => @log_ingestion_parent_job_id }.compact
      parents.empty? ? super : super.merge(PAYLOAD_KEY => parents)
    end

    def deserialize(job_data)
      super
      parents = job_data[PAYLOAD_KEY]
      return unless parents.is_a?(Hash)

      @log_ingestion_parent_request_id = Context.clean_id(parents["parent_request_id"])
      @log_ingestion_parent_job_id = Context.clean_id(parents["parent_job_id"])
    end

    private

    # The request (or job) running when the job is enqueued (or performed without a
    # queue) is its parent; a retry enqueued by the job itself keeps the parents it
    # already has.
    def log_ingestion_capture_parent
      return if @log_ingestion_parent_request_id || @log_ingestion_parent_job_id

      context = Context.current or return
      @log_ingestion_parent_request_id = context.root_request_id
      @log_ingestion_parent_job_id = context.job_id
    end
  end
end
