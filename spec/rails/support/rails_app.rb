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
    LogIngestionClient.clear_recorded_entries
  end
  config.after(:suite) do
    File.delete(ENV["LOG_INGESTION_TEST_DB"]) if File.exist?(ENV["LOG_INGESTION_TEST_DB"].to_s)
  end
end
