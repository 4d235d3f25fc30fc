# frozen_string_literal: true

require "active_support/concern"
require "log_ingestion/rails/exception_details"
require "log_ingestion/rails/request_logging"
require "log_ingestion/stopwatch"
require "log_ingestion/rails/request_ip"
require "log_ingestion/failsafe"
require "log_ingestion/context"

module LogIngestion
  # Controller concern that logs each action's request, response and failure --
  # the guide's `Loggable`, shipped. Usable alone (without the middleware):
  #
  #   class ApplicationController < ActionController::Base
  #     include LogIngestion::ControllerLogging
  #   end
  #
  # Owns: the around_action and its three entries ("HTTP Request", "HTTP Response",
  # "Request failed"). Uses Rails' request id (ActionDispatch::RequestId) and runs
  # the action in that request's Context, so every entry of the action carries it.
  # Never swallows an exception of the action, never raises one of its own (its
  # entries are built in Failsafe; the IP comes from RequestIp), and never filters
  # params itself: the client's metadata_filter (Rails: `config.filter_parameters`)
  # masks every entry's metadata, once. Override `should_log?` or
  # `log_ingestion_params` in a controller to change what is logged.
  module ControllerLogging
    extend ActiveSupport::Concern

    UNLOGGED_PARAMS = %w[controller action format].freeze

    included do
      around_action :log_ingestion_around_action, if: :should_log?
    end

    private

    def log_ingestion_around_action
      started = Stopwatch.now_ms
      request_id = Failsafe.run(:controller_logging) { log_ingestion_request_id } || SecureRandom.uuid
      status = nil
      Context.with_request(request_id) do
        Failsafe.run(:controller_logging) do
          ::LogIngestionClient.info("HTTP Request", log_ingestion_request_metadata(request_id))
        end
        begin
          yield
          status = response.status
        rescue StandardError => e
          status = Failsafe.run(:controller_logging, 500) { RequestLogging.status_for(e) }
          Failsafe.run(:controller_logging) do
            ::LogIngestionClient.error("Request failed", {
                                         request_id: request_id, controller: self.class.name,
                                         action: action_name, exception: ExceptionDetails.call(e)
                                       })
          end
          raise
        ensure
          Failsafe.run(:controller_logging) do
            ::LogIngestionClient.info("HTTP Response", {
                                        request_id: request_id, controller: self.class.name, action: action_name,
                                        status: status, duration_ms: Stopwatch.elapsed_ms(started)
                                      })
          end
        end
      end
    end

    # False for the guide's skipped prefixes (/assets /packs /rails /favicon.ico).
    def should_log?
      !request.path.start_with?(*RequestLogging::DEFAULT_SKIP_PATHS)
    end

    # The params logged with "HTTP Request", without controller/action/format (masked,
    # like all metadata, by the client's metadata_filter: `config.filter_parameters`).
    def log_ingestion_params
      request.parameters.except(*UNLOGGED_PARAMS)
    end

    def log_ingestion_request_id
      Context.clean_id(request.request_id) || Context.current&.request_id || SecureRandom.uuid
    end

    def log_ingestion_request_metadata(request_id)
      {
        request_id: request_id,
        controller: self.class.name,
        action: action_name,
        method: request.request_method,
        path: request.path,
        params: log_ingestion_params,
        **RequestIp.call(request),
        user_agent: request.user_agent,
        referer: request.referer
      }
    end
  end
end
