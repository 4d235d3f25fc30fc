# frozen_string_literal: true

require "securerandom"
require "log_ingestion/context"

module LogIngestion
  # Rack middleware that opens the request's Context as early as the request id
  # exists (right after ActionDispatch::RequestId), so that everything logged while
  # the request runs carries its id -- Rails' own "Started GET ..." line
  # (Rails::Rack::Logger) and DebugExceptions' FATAL lines included, which run
  # outside RequestLogging.
  #
  # Owns: opening and closing that Context. Never logs, never reads the body,
  # never changes the request or the response, never raises one of its own (an id
  # it cannot read becomes a fresh uuid). The context ends when `call` returns: an
  # entry logged while a streamed body is written carries no id.
  class RequestContext
    def initialize(app)
      @app = app
    end

    def call(env)
      Context.with_request(request_id_for(env)) { @app.call(env) }
    end

    private

    # ActionDispatch::RequestId's id (stored under Context::REQUEST_ID_ENV so
    # RequestLogging uses the same one), else a fresh uuid.
    def request_id_for(env)
      env[Context::REQUEST_ID_ENV] ||= Context.clean_id(env["action_dispatch.request_id"]) || SecureRandom.uuid
    rescue StandardError
      SecureRandom.uuid
    end
  end
end
