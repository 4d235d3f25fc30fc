# frozen_string_literal: true

# Boots the test Rails app (spec/rails/app) in this process, in test mode: the
# client records entries in memory (LogIngestionClient.recorded_entries).
require "tmpdir"
$LOAD_PATH.unshift(File.expand_path("../../../lib", __dir__)) unless $LOAD_PATH.include?(File.expand_path("../../../lib", __dir__))
ENV["RAILS_ENV"] = "test"
ENV.delete("LOG_INGESTION_URL")
ENV.delete("LOG_INGESTION_API_KEY")
ENV["LOG_INGESTION_TEST_DB"] ||= File.join(Dir.tmpdir, "log_ingestion_rails_spec_#{Process.pid}.sqlite3")
require_relative "../app/config/environment"
require "rack/test"
require "json"

module RailsAppHelpers
  include Rack::Test::Methods

  def app
    Rails.application
  end

  def entries
    LogIngestionClient.recorded_entries
  end

  def entries_with(message)
    entries.select { |entry| entry[:message] == message }
  end

  def entry_with(message)
    found = entries_with(message)
    raise "expected one #{message.inspect} entry, got #{found.size}: #{entries.map { |e| e[:message] }.inspect}" unless found.size == 1

    found.first
  end

  # Everything recorded, as JSON text (what would go over the wire).
  def recorded_json
    JSON.generate(entries)
  end

  # The app with LogIngestion::RequestLogging inside DebugExceptions, where
  # `config.log_ingestion.request_logging = true` puts it (the spec app keeps README's
  # setup, which leaves it out).
  def self.request_logging_app
    @request_logging_app ||= begin
      stack = Rails.application.middleware.dup
      stack.insert_after(ActionDispatch::DebugExceptions, LogIngestion::RequestLogging)
      built = stack.build(Rails.application.routes)
      lambda do |env|
        Rails.application.send(:build_request, env) # what Rails.application.call does first
        built.call(env)
      end
    end
  end

  # The Rails.logger forwarder broadcast_logger installed.
  def self.forwarder
    Rails.logger.instance_variable_get(:@log_ingestion_forwarder)
  end

  # Puts the glue back to the spec app's settings (a spec may have changed them).
  def self.reset_glue
    options = Rails.application.config.log_ingestion
    LogIngestion::Subscribers.subscribe(only: LogIngestion::Railtie.subscriber_names(options.subscribers),
                                        slow_query_ms: LogIngestion::Subscribers::DEFAULT_SLOW_QUERY_MS)
    LogIngestion::RequestEntries.subscribe
    LogIngestion::RequestLines.replace
    forwarder&.forward_level = LogIngestion::Railtie::DEFAULT_LOGGER_LEVEL
  end
end

RSpec.configure do |config|
  # Only the specs under spec/rails get the app's helpers and hooks.
  config.define_derived_metadata(file_path: %r{/spec/rails/}) { |metadata| metadata[:rails_app] = true }
  config.include RailsAppHelpers, :rails_app
  config.before(:each, :rails_app) do
    # Another spec file run in this process may have reconfigured the client.
    LogIngestion::Railtie.configure_client(Rails.application.config.log_ingestion) unless LogIngestionClient.test_mode
    LogIngestion::ParameterFilter.current = LogIngestion::Railtie.parameter_filter(Rails.application, nil)
    LogIngestion::Client.default_metadata_filter =
      LogIngestion::Railtie.default_metadata_filter(Rails.application.config.log_ingestion.metadata_filter)
    RailsAppHelpers.reset_glue
    LogIngestionClient.clear_recorded_entries
  end
  config.after(:suite) do
    File.delete(ENV["LOG_INGESTION_TEST_DB"]) if File.exist?(ENV["LOG_INGESTION_TEST_DB"].to_s)
  end
end
