# frozen_string_literal: true

require "active_support/concern"
require "log_ingestion/rails/exception_details"
require "log_ingestion/stopwatch"
require "log_ingestion/failsafe"

module LogIngestion
  # ActiveJob concern that logs each run of a job ("Job started", "Job completed",
  # "Job failed" with the exception, which is re-raised) -- the guide's
  # `LoggableJob`, shipped. Usable alone:
  #
  #   class ExportJob < ApplicationJob
  #     include LogIngestion::JobLogging
  #
  #     private
  #
  #     def job_arguments # what "Job started" logs; default: all arguments
  #       { user_id: arguments.first }
  #     end
  #   end
  #
  # Owns: the around_perform and its entries. Never swallows an exception of the job,
  # never changes the job's arguments, never raises one of its own (its entries are
  # built in Failsafe), and never filters arguments itself: the client's
  # metadata_filter (Rails: `config.filter_parameters`) masks every entry's metadata.
  module JobLogging
    extend ActiveSupport::Concern

    included do
      around_perform :log_ingestion_around_perform
    end

    private

    def log_ingestion_around_perform
      started = Stopwatch.now_ms
      identity = { job_class: self.class.name, job_id: job_id, queue_name: queue_name }
      Failsafe.run(:job_logging) do
        ::LogIngestionClient.info("Job started",
                                  identity.merge(arguments: job_arguments).compact)
      end
      begin
        yield
      rescue StandardError => e
        Failsafe.run(:job_logging) do
          ::LogIngestionClient.error("Job failed", identity.merge(duration_ms: Stopwatch.elapsed_ms(started),
                                                                  exception: ExceptionDetails.call(e)))
        end
        raise
      end
      Failsafe.run(:job_logging) do
        ::LogIngestionClient.info("Job completed", identity.merge(duration_ms: Stopwatch.elapsed_ms(started)))
      end
    end

    # What "Job started" logs as arguments. Override to choose; the client's
    # metadata_filter masks it like all metadata. By default all arguments, or none
    # when the job turns off Rails' argument logging (`self.log_arguments = false`).
    def job_arguments
      arguments if self.class.log_arguments?
    end
  end
end
