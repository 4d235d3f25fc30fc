# frozen_string_literal: true

require "logger"
require "log_ingestion/version"
require "log_ingestion/error"
require "log_ingestion/levels"
require "log_ingestion/context"
require "log_ingestion/trace_context"
require "log_ingestion/configuration"
require "log_ingestion/native"
require "log_ingestion/error_reporter"
require "log_ingestion/engine_delivery"
require "log_ingestion/test_delivery"
require "log_ingestion/client"

# Structured logs from Ruby and Rails apps to the log ingestion service, delivered by
# a Rust core. The public entry point is LogIngestionClient (lib/log_ingestion_client.rb);
# the rest lives in this namespace. One entry's path: LogIngestionClient ->
# LogIngestion::Client (client.rb) -> LogIngestion::EngineDelivery (engine_delivery.rb)
# -> the native extension's LogIngestion::Native::Engine -> log_ingestion_engine::Engine.
module LogIngestion
  class << self
    # The gem's own logger for its diagnostics (never Rails.logger, so reporting a
    # delivery failure can never log through the client again).
    def logger
      @logger ||= ::Logger.new($stderr)
    end

    attr_writer :logger

    # True while a Rails app boots (set by the Railtie from its first initializer to
    # the end of its after_initialize): log calls then start no Ruby thread, so a
    # server that preloads the app and forks (Puma's preload_app!) finds none.
    def booting?
      @booting == true
    end

    attr_writer :booting
  end
end

require "log_ingestion_client" unless defined?(LogIngestionClient)
# The Rails glue, when Rails is already loaded (otherwise: require "log_ingestion/rails").
require "log_ingestion/rails/railtie" if defined?(::Rails::Railtie)
