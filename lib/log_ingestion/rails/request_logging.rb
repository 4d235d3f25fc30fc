# frozen_string_literal: true

require "securerandom"
require "rack"
require "log_ingestion/rails/parameter_filter"
require "log_ingestion/rails/exception_details"
require "log_ingestion/stopwatch"
require "log_ingestion/rails/request_ip"
require "log_ingestion/failsafe"
require "log_ingestion/context"

module LogIngestion
  # Rack middleware that logs every request ("HTTP Request"), its response
  # ("HTTP Response") and any exception that passes through it ("Request error",
  # re-raised unchanged) -- the guide's RequestLoggingMiddleware, shipped.
  #
  # Owns: the request/response/error entries, and telling the request's Context
  # (opened here unless RequestContext did further out) which exception it logged and
  # which status the app answered, for the Logger's noise rules. An exception that
  # Rails answers with a 4xx (routing, CSRF, a bad parameter) is a WARN "Request
  # error", a 5xx an ERROR.
  # Never swallows an exception of the app, never reads the request body, never logs a
  # query string unfiltered, never changes the response, and never raises one of its
  # own: building and logging its entries runs in Failsafe (a failure there is
  # reported through on_error and the request goes on unlogged), and the client IP
  # comes from RequestIp (a spoofed Client-IP/X-Forwarded-For pair is noted, not raised).
  #
  #   config.log_ingestion.request_logging = true   # the Railtie inserts it
  #   # or by hand, with options:
  #   config.middleware.insert_after ActionDispatch::DebugExceptions,
  #                                  LogIngestion::RequestLogging, skip_paths: %w[/health]
  class RequestLogging
    DEFAULT_SKIP_PATHS = %w[/assets /packs /rails /favicon.ico].freeze
    REQUEST_ID_ENV = Context::REQUEST_ID_ENV

    # The HTTP status Rails answers +exception+ with (ActionDispatch's
    # rescue_responses), or 500 outside Rails. ControllerLogging and Subscribers use it too.
    def self.status_for(exception)
      if defined?(::ActionDispatch::ExceptionWrapper)
        ::ActionDispatch::ExceptionWrapper.status_code_for_exception(exception.class.name)
      else
        500
      end
    end

    attr_reader :skip_paths

    # Options: skip_paths (path prefixes not logged), client (default LogIngestionClient),
    # filter (a LogIngestion::ParameterFilter; default ParameterFilter.current).
    def initialize(app, options = {})
      @app = app
      @skip_paths = Array(options.fetch(:skip_paths, DEFAULT_SKIP_PATHS)).map(&:to_s).freeze
      @client = options[:client]
      @filter = options[:filter]
    end

    def call(env)
      path = env["PATH_INFO"].to_s
      return @app.call(env) if skip?(path) || !client.configured?

      started = Stopwatch.now_ms
      request = build_request(env)
      request_id = Failsafe.run(:request_logging) { request_id_for(env, request) } || SecureRandom.uuid
      Context.with_request(request_id) do
        Failsafe.run(:request_logging) { client.info("HTTP Request", request_metadata(request, request_id)) }
        status, headers, body = call_app(env, request, request_id, started)
        Failsafe.run(:request_logging) do
          Context.current&.response_status = status.to_i
          client.info("HTTP Response", response_metadata(request, request_id, started, status, headers))
        end
        [status, headers, body]
      end
    end

    private

    def call_app(env, request, request_id, started)
      @app.call(env)
    rescue StandardError => e
      Failsafe.run(:request_logging) { log_exception(e, request, request_id, started) }
      raise
    end

    def log_exception(exception, request, request_id, started)
      status = self.class.status_for(exception)
      context = Context.current
      if context
        context.logged_exception = exception
        context.response_status = status
      end
      client.log(status.to_i >= 500 ? "ERROR" : "WARN", "Request error", {
                   request_id: request_id, method: request.request_method, path: request.path,
                   status: status, duration_ms: Stopwatch.elapsed_ms(started),
                   exception: ExceptionDetails.call(exception)
                 })
      client.info("HTTP Response", response_metadata(request, request_id, started, status, {}))
    end

    def skip?(path)
      !@skip_paths.empty? && path.start_with?(*@skip_paths)
    end

    def client
      @client || ::LogIngestionClient
    end

    def filter
      @filter || ParameterFilter.current
    end

    def build_request(env)
      defined?(::ActionDispatch::Request) ? ::ActionDispatch::Request.new(env) : ::Rack::Request.new(env)
    end

    # ActionDispatch::RequestId's id when that middleware ran, else a fresh uuid;
    # stored in the env so the app can read it too.
    def request_id_for(env, request)
      env[REQUEST_ID_ENV] ||= begin
        id = env["action_dispatch.request_id"]
        id = request.request_id if id.nil? && request.respond_to?(:request_id)
        Context.clean_id(id) || SecureRandom.uuid
      end
    end

    def request_metadata(request, request_id)
      {
        request_id: request_id,
        method: request.request_method,
        path: request.path,
        query_string: filter.filter_query_string(request.query_string.to_s),
        **RequestIp.call(request),
        user_agent: request.user_agent,
        referer: request.referer,
        pid: Process.pid
      }
    end

    def response_metadata(request, request_id, started, status, headers)
      {
        request_id: request_id,
        method: request.request_method,
        path: request.path,
        status: status.to_i,
        duration_ms: Stopwatch.elapsed_ms(started),
        content_type: content_type(headers)
      }
    end

    def content_type(headers)
      return nil unless headers.respond_to?(:[])

      headers["Content-Type"] || headers["content-type"]
    end
  end
end
