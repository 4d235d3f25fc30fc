# frozen_string_literal: true

require "securerandom"
require "rack"
require "log_ingestion/parameter_filter"
require "log_ingestion/exception_details"
require "log_ingestion/stopwatch"
require "log_ingestion/request_ip"
require "log_ingestion/failsafe"

module LogIngestion
  # Rack middleware that logs every request ("HTTP Request"), its response
  # ("HTTP Response") and any exception that passes through it ("Request error",
  # re-raised unchanged) -- the guide's RequestLoggingMiddleware, shipped.
  #
  # Owns: the request-scoped request id (`RequestLogging.current_request_id`, read
  # by the Logger and the subscribers) and the request/response/error entries.
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
    REQUEST_ID_ENV = "log_ingestion.request_id"
    CURRENT_REQUEST_ID = :log_ingestion_request_id
    private_constant :CURRENT_REQUEST_ID

    # The request id of the request this thread (fiber) is serving, or nil.
    def self.current_request_id
      Thread.current[CURRENT_REQUEST_ID]
    end

    # Runs the block with +request_id+ as the current request id.
    def self.with_request_id(request_id)
      previous = Thread.current[CURRENT_REQUEST_ID]
      Thread.current[CURRENT_REQUEST_ID] = request_id
      yield
    ensure
      Thread.current[CURRENT_REQUEST_ID] = previous
    end

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
      self.class.with_request_id(request_id) do
        Failsafe.run(:request_logging) { client.info("HTTP Request", request_metadata(request, request_id)) }
        status, headers, body = call_app(env, request, request_id, started)
        Failsafe.run(:request_logging) do
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
      client.error("Request error", filter.filter_hash(
                                      request_id: request_id, method: request.request_method, path: request.path,
                                      status: status, duration_ms: Stopwatch.elapsed_ms(started),
                                      error: ExceptionDetails.call(exception)
                                    ))
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
        id.nil? || id.to_s.empty? ? SecureRandom.uuid : id.to_s
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
