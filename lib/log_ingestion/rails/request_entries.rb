# frozen_string_literal: true

require "active_support/notifications"
require "log_ingestion/context"
require "log_ingestion/failsafe"
require "log_ingestion/rails/parameter_filter"
require "log_ingestion/rails/request_ip"
require "log_ingestion/rails/exception_entry"
require "log_ingestion/rails/request_lines"

module LogIngestion
  # One entry per request that reaches a controller, built once from Rails'
  # `process_action.action_controller` payload (the lograge idea, structured):
  #
  #   INFO "GET /orders 200"  kind: "request", method, path (query filtered), format,
  #        controller, action, status, duration_ms, view_ms, db_ms, allocations,
  #        request_id, remote_ip, user_agent, params (filtered, without controller/action/format)
  #
  # WARN for a 4xx, ERROR for a 5xx. An exception that escaped the action is its own
  # entry beside it (ExceptionEntry: the request entry says status 500, the exception
  # entry carries class, message and backtrace). Exceptions raised before any controller
  # ran (a routing error) are sent by RequestContext, as the only entry of their request.
  #
  #   LogIngestion::RequestEntries.subscribe   # the Railtie does (config.log_ingestion.request_entries)
  #
  # Owns: that subscription and the request entry's shape. Never raises into the
  # request (its work runs in Failsafe), never formats text nobody reads (one message,
  # one Hash per request; the Rails log's one line only when INFO is written there:
  # RequestLines), never logs params or a query string unfiltered.
  module RequestEntries
    EVENT = "process_action.action_controller"
    KIND = "request"
    # Params that are the entry's own keys (or Rails' routing), not the request's.
    UNLOGGED_PARAMS = %w[controller action format].freeze
    STARTS = :log_ingestion_action_starts
    private_constant :STARTS

    # The ActiveSupport::Notifications listener: start and finish of each action, timed
    # on a monotonic clock with the objects allocated meanwhile.
    class Listener
      def start(_name, _id, _payload)
        starts = (Thread.current[STARTS] ||= [])
        starts << Process.clock_gettime(Process::CLOCK_MONOTONIC, :float_millisecond)
        starts << GC.stat(:total_allocated_objects)
      end

      def finish(_name, _id, payload)
        allocations = GC.stat(:total_allocated_objects)
        finished = Process.clock_gettime(Process::CLOCK_MONOTONIC, :float_millisecond)
        starts = Thread.current[STARTS]
        allocations -= starts.pop
        duration = finished - starts.pop
        Failsafe.run(:request_entries) { RequestEntries.log(payload, duration, allocations) }
      end
    end

    @subscription = nil

    class << self
      # Subscribes (once); returns true.
      def subscribe
        @subscription ||= ActiveSupport::Notifications.subscribe(EVENT, Listener.new)
        true
      end

      def unsubscribe
        subscription = @subscription or return
        @subscription = nil
        ActiveSupport::Notifications.unsubscribe(subscription)
      end

      # True while the request entries are sent (RequestContext sends the exception
      # entries of requests that reached no controller only then).
      def subscribed?
        !@subscription.nil?
      end

      # Sends the request entry of one action (and its exception's entry).
      def log(payload, duration, allocations)
        exception = payload[:exception_object]
        status = payload[:status] || (exception ? status_for(exception) : nil)
        request = payload[:request]
        path = payload[:path].to_s
        query_at = path.index("?")
        base_path = query_at ? path[0, query_at] : path
        method = payload[:method]
        metadata = {
          kind: KIND, method: method, path: query_at ? filtered_path(base_path, path, query_at) : path,
          format: payload[:format], controller: payload[:controller], action: payload[:action], status: status,
          duration_ms: duration.round(2), view_ms: payload[:view_runtime]&.round(2),
          db_ms: payload[:db_runtime]&.round(2), allocations: allocations
        }
        add_request_fields(metadata, request) if request
        params = loggable_params(payload[:params])
        metadata[:params] = params if params
        level = level_for(status)
        context = Context.current
        context.response_status = status if context
        metadata.compact!
        ::LogIngestionClient.log(level, "#{method} #{base_path} #{status}", metadata)
        if RequestLines.replacing?
          RequestLines.write(method, metadata[:path], status, metadata[:duration_ms], metadata[:controller],
                             metadata[:action], metadata[:request_id], exception)
        end
        log_exception(exception, metadata, context) if exception
      end

      # The status Rails answers +exception+ with (ActionDispatch's rescue_responses).
      def status_for(exception)
        if defined?(::ActionDispatch::ExceptionWrapper)
          ::ActionDispatch::ExceptionWrapper.status_code_for_exception(exception.class.name)
        else
          500
        end
      end

      # INFO below 400, WARN for a 4xx, ERROR for a 5xx.
      def level_for(status)
        return "INFO" if status.nil? || status < 400

        status < 500 ? "WARN" : "ERROR"
      end

      private

      def log_exception(exception, metadata, context)
        context.logged_exception = exception if context
        fields = metadata.slice(:method, :path, :status, :controller, :action, :request_id)
        ExceptionEntry.log(exception, ExceptionEntry.level_for(metadata[:status]), fields)
      end

      def filtered_path(base_path, path, query_at)
        query = path[(query_at + 1)..]
        filtered = ParameterFilter.current.filter_query_string(query)
        filtered.equal?(query) ? path : "#{base_path}?#{filtered}"
      end

      def add_request_fields(metadata, request)
        metadata[:request_id] = Context.current&.request_id || Context.clean_id(request.request_id)
        ip, spoofing = RequestIp.address(request)
        metadata[:remote_ip] = ip
        metadata[:ip_spoofing] = spoofing if spoofing
        metadata[:user_agent] = request.user_agent
      end

      # Rails' filtered params (config.filter_parameters already applied), without the
      # routing keys; filtered again only when the glue's filter is not Rails' own
      # list; nil when nothing is left.
      def loggable_params(params)
        return nil unless params.is_a?(Hash) && params.size > UNLOGGED_PARAMS.count { |key| params.key?(key) }

        params = params.except(*UNLOGGED_PARAMS)
        filter = ParameterFilter.current
        filter.rails_filters? ? params : filter.filter_hash(params)
      end
    end
  end
end
