# frozen_string_literal: true

require "active_support/notifications"
require "log_ingestion/rails/parameter_filter"
require "log_ingestion/rails/exception_details"
require "log_ingestion/rails/request_logging"
require "log_ingestion/failsafe"
require "log_ingestion/context"

module LogIngestion
  # ActiveSupport::Notifications subscribers that turn Rails' own instrumentation
  # into entries -- the guide's notifications initializer, shipped:
  #
  #   process_action  "Action processed"  (process_action.action_controller)
  #   sql             "Slow SQL query"    (sql.active_record slower than slow_query_ms; binds filtered)
  #   enqueue         "Job enqueued"      (enqueue.active_job)
  #   perform         "Job performed" / "Job failed" with the exception (perform.active_job)
  #
  # Owns: which of these are subscribed (`subscribe(only:)`, `unsubscribe`) and the
  # entries each one makes. Never raises into the instrumented code (a subscriber
  # that fails runs in Failsafe: reported through on_error once, then quiet), never
  # logs bind values or params unfiltered.
  module Subscribers
    ALL = %i[process_action sql enqueue perform].freeze
    EVENTS = {
      process_action: "process_action.action_controller",
      sql: "sql.active_record",
      enqueue: "enqueue.active_job",
      perform: "perform.active_job"
    }.freeze
    DEFAULT_SLOW_QUERY_MS = 100
    SQL_TEXT_LIMIT = 500
    IGNORED_SQL_NAMES = %w[SCHEMA].freeze

    @subscriptions = {}
    @slow_query_ms = DEFAULT_SLOW_QUERY_MS
    @mutex = Mutex.new

    class << self
      # Slow-query threshold in milliseconds; queries taking at least this long are logged.
      attr_reader :slow_query_ms

      def slow_query_ms=(value)
        number = Float(value)
        raise ArgumentError, "slow_query_ms must be >= 0 (got #{value.inspect})" if number.negative?

        @slow_query_ms = number
      end

      # Subscribes the named subscribers (default ALL), replacing any subscribed
      # before; returns the names now subscribed.
      def subscribe(only: ALL, slow_query_ms: nil)
        names = Array(only).map(&:to_sym)
        unknown = names - ALL
        raise ArgumentError, "unknown subscriber(s) #{unknown.inspect}; known: #{ALL.inspect}" unless unknown.empty?

        self.slow_query_ms = slow_query_ms unless slow_query_ms.nil?
        @mutex.synchronize do
          unsubscribe_locked
          names.each do |name|
            handler = method(:"handle_#{name}")
            source = :"#{name}_subscriber"
            @subscriptions[name] = ActiveSupport::Notifications.subscribe(EVENTS.fetch(name)) do |*args|
              Failsafe.run(source) { handler.call(ActiveSupport::Notifications::Event.new(*args)) }
            end
          end
          @subscriptions.keys
        end
      end

      # Removes every subscription this module made.
      def unsubscribe
        @mutex.synchronize { unsubscribe_locked }
      end

      # Names of the subscribers currently subscribed.
      def subscribed
        @subscriptions.keys
      end

      private

      def unsubscribe_locked
        @subscriptions.each_value { |subscriber| ActiveSupport::Notifications.unsubscribe(subscriber) }
        @subscriptions = {}
      end

      def filter
        ParameterFilter.current
      end

      def handle_process_action(event)
        payload = event.payload
        exception = payload[:exception_object]
        ::LogIngestionClient.info("Action processed", {
                                    request_id: request_id_from(payload),
                                    controller: payload[:controller],
                                    action: payload[:action],
                                    method: payload[:method],
                                    path: filter_path(payload[:path]),
                                    format: payload[:format],
                                    status: payload[:status] || (exception && RequestLogging.status_for(exception)),
                                    duration_ms: event.duration.round(2),
                                    view_runtime: payload[:view_runtime]&.round(2),
                                    db_runtime: payload[:db_runtime]&.round(2),
                                    error: exception && ExceptionDetails.call(exception)
                                  }.compact)
      end

      def handle_sql(event)
        payload = event.payload
        return if payload[:cached] || IGNORED_SQL_NAMES.include?(payload[:name])

        duration = event.duration
        return if duration < @slow_query_ms

        ::LogIngestionClient.warn("Slow SQL query", {
                                    sql: filter.filter_text(payload[:sql].to_s[0, SQL_TEXT_LIMIT]),
                                    name: payload[:name],
                                    duration_ms: duration.round(2),
                                    threshold_ms: @slow_query_ms,
                                    binds: filtered_binds(payload)
                                  }.compact)
      end

      def handle_enqueue(event)
        job = event.payload[:job]
        return if job.nil?

        ::LogIngestionClient.info("Job enqueued", job_identity(job).merge(scheduled_at: job.scheduled_at).compact)
      end

      def handle_perform(event)
        job = event.payload[:job]
        return if job.nil?

        metadata = job_identity(job).merge(duration_ms: event.duration.round(2))
        exception = event.payload[:exception_object]
        if exception
          ::LogIngestionClient.error("Job failed", metadata.merge(exception: ExceptionDetails.call(exception)))
        else
          ::LogIngestionClient.info("Job performed", metadata)
        end
      end

      # The job's ids; "Job performed"/"Job failed" are instrumented outside the job's
      # own Context (JobContext), so its parent ids are taken from the job itself.
      def job_identity(job)
        identity = { job_class: job.class.name, job_id: job.job_id, queue_name: job.queue_name,
                     executions: job.executions }
        identity.merge!(job.log_ingestion_context_fields) if job.respond_to?(:log_ingestion_context_fields)
        identity.compact
      end

      def request_id_from(payload)
        request = payload[:request]
        id = request.request_id if request.respond_to?(:request_id)
        id = payload[:headers]["action_dispatch.request_id"] if id.nil? && payload[:headers]
        id || Context.current&.request_id
      end

      # The path with its query string filtered.
      def filter_path(path)
        return path if path.nil?

        base, separator, query = path.to_s.partition("?")
        separator.empty? ? base : "#{base}?#{filter.filter_query_string(query)}"
      end

      # Bind values by column name, each masked when the name matches the filters.
      def filtered_binds(payload)
        binds = Array(payload[:binds])
        return nil if binds.empty?

        values = payload[:type_casted_binds]
        values = values.call if values.respond_to?(:call)
        binds.each_with_index.map do |bind, index|
          name = bind.respond_to?(:name) ? bind.name : nil
          value = values ? values[index] : bind_value(bind)
          { name: name, value: filter.filter_value(name, value) }
        end
      end

      def bind_value(bind)
        bind.respond_to?(:value_for_database) ? bind.value_for_database : bind
      end
    end
  end
end
