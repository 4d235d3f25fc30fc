# frozen_string_literal: true

require "securerandom"
require "log_ingestion/context"
require "log_ingestion/failsafe"
require "log_ingestion/stopwatch"
require "log_ingestion/rails/request_ip"
require "log_ingestion/rails/request_entries"
require "log_ingestion/rails/exception_entry"

module LogIngestion
  # Rack middleware that opens the request's Context as early as the request id
  # exists (right after ActionDispatch::RequestId), so that everything logged while
  # the request runs carries its id -- DebugExceptions' lines included, which run
  # outside the controller.
  #
  # With the request entries on (RequestEntries.subscribed?), it also sends the
  # exception of a request that no controller reported: a routing error (raised by
  # ActionDispatch::DebugExceptions after the router found nothing), or an exception
  # of a middleware. That exception entry, WARN for a 4xx and ERROR for a 5xx, is the
  # request's only entry and carries method, path, status, duration_ms, remote_ip and
  # user_agent. It sees the exception raised through it (show_exceptions off), the one
  # ShowExceptions stored in the env, or the one DebugExceptions' interceptor
  # (`intercept`, registered by the Railtie) noted in the Context before Rails logs it.
  # A request that reaches no controller and raises nothing (a mounted Rack app such
  # as LogIngestion::StatsEndpoint, a health check) sends nothing.
  #
  # Owns: opening and closing that Context, and that exception entry. Never reads the
  # body, never changes the request or the response, never swallows an exception of
  # the app, never raises one of its own (an id it cannot read becomes a fresh uuid;
  # the entry is built in Failsafe). The context ends when `call` returns: an entry
  # logged while a streamed body is written carries no id.
  class RequestContext
    # Rack env key where ActionDispatch::ShowExceptions stores the exception it rendered.
    EXCEPTION_ENV = "action_dispatch.exception"

    # ActionDispatch::DebugExceptions interceptor: notes +exception+ in the request's
    # Context before DebugExceptions logs it (so the Logger does not forward that report).
    def self.intercept(_request, exception)
      return unless RequestEntries.subscribed?

      context = Context.current or return
      context.logged_exception ||= exception
    rescue StandardError
      nil
    end

    def initialize(app)
      @app = app
    end

    def call(env)
      Context.with_request(request_id_for(env)) do
        started = Stopwatch.now_ms
        path = env["PATH_INFO"] # ShowExceptions rewrites it to the error page's ("/404")
        begin
          status, headers, body = @app.call(env)
        rescue Exception => e # rubocop:disable Lint/RescueException -- logged, then re-raised unchanged
          log_unreported(env, path, e, nil, started) if RequestEntries.subscribed?
          raise
        end
        if RequestEntries.subscribed?
          exception = Context.current&.logged_exception || env[EXCEPTION_ENV]
          log_unreported(env, path, exception, status, started) if exception
        end
        [status, headers, body]
      end
    end

    private

    def log_unreported(env, path, exception, status, started)
      return if ExceptionEntry.sent?(exception)

      Failsafe.run(:request_entries) do
        status = status.to_i if status
        status = RequestEntries.status_for(exception) if status.nil? || status < 400
        Context.current&.response_status = status
        ExceptionEntry.log(exception, ExceptionEntry.level_for(status), request_fields(env, path, status, started))
      end
    end

    def request_fields(env, path, status, started)
      request = defined?(::ActionDispatch::Request) ? ::ActionDispatch::Request.new(env) : nil
      fields = { method: env["REQUEST_METHOD"], path: path, status: status,
                 duration_ms: Stopwatch.elapsed_ms(started), request_id: Context.current&.request_id }
      if request
        ip, spoofing = RequestIp.address(request)
        fields[:remote_ip] = ip
        fields[:ip_spoofing] = spoofing if spoofing
      end
      fields[:user_agent] = env["HTTP_USER_AGENT"]
      fields.compact
    end

    # ActionDispatch::RequestId's id (stored under Context::REQUEST_ID_ENV so
    # RequestLogging uses the same one), else a fresh uuid.
    def request_id_for(env)
      env[Context::REQUEST_ID_ENV] ||= Context.clean_id(env["action_dispatch.request_id"]) || SecureRandom.uuid
    rescue StandardError
      SecureRandom.uuid
    end
  end
end
