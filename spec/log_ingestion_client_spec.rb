# frozen_string_literal: true

require "spec_helper"

# The guide's class-level API. Each example runs in a child process, so the
# process-wide LogIngestionClient of this run is left alone.
RSpec.describe LogIngestionClient do
  def run_client(script, env: {})
    out, err, status = run_ruby("require \"log_ingestion\"\n#{script}", env: env)
    raise "child failed: #{err}" unless status.success?

    out.lines.map(&:chomp)
  end

  # Runs +setup+ in a child, then prints the +settings+ of LogIngestionClient as one
  # inspected array; returns run_client's lines.
  def settings_after(setup, settings, env: {})
    run_client(<<~RUBY, env: env)
      #{setup}
      puts [#{settings.map { |name| "LogIngestionClient.#{name}" }.join(", ")}].inspect
      LogIngestionClient.shutdown(timeout: 0)
    RUBY
  end

  it "offers every accessor of the guide, plus the gem's own" do
    out = run_client(<<~RUBY)
      names = %i[api_url api_key service enable_batching batch_size batch_interval max_retries retry_delay
                 max_queue_bytes drop_policy gzip on_error shutdown_timeout]
      puts names.all? { |n| LogIngestionClient.respond_to?(n) && LogIngestionClient.respond_to?(:"\#{n}=") }
      puts %i[debug info warn warning error fatal critical log flush send_log shutdown stats configured?]
        .all? { |n| LogIngestionClient.respond_to?(n) }
    RUBY
    expect(out).to eq(%w[true true])
  end

  it "reads back what every accessor's setter was given" do
    out = run_client(<<~RUBY)
      handler = ->(_report) {}
      values = { api_url: "http://127.0.0.1:9", api_key: "k", service: "svc", enable_batching: false, batch_size: 10,
                 batch_interval: 5, max_retries: 3, retry_delay: 1, max_queue_bytes: 1_000_000, drop_policy: :oldest,
                 gzip: false, on_error: handler, shutdown_timeout: 2 }
      values.each { |name, value| LogIngestionClient.public_send(:"\#{name}=", value) }
      puts values.all? { |name, value| LogIngestionClient.public_send(name) == value }
      LogIngestionClient.shutdown(timeout: 0)
    RUBY
    expect(out).to eq(["true"])
  end

  it "configures from ENV with no arguments" do
    env = { "LOG_INGESTION_URL" => "http://127.0.0.1:9", "LOG_INGESTION_API_KEY" => "k", "LOG_INGESTION_SERVICE" => "svc" }
    out = settings_after("LogIngestionClient.configure", %i[api_url service configured?], env: env)
    expect(out).to eq(['["http://127.0.0.1:9", "svc", true]'])
  end

  it "configures from Rails credentials when the environment says nothing" do
    env = { "LOG_INGESTION_URL" => nil, "LOG_INGESTION_API_KEY" => nil, "LOG_INGESTION_SERVICE" => nil,
            "RAILS_MASTER_KEY" => nil }
    out = run_client(<<~RUBY, env: env)
      require "rails"
      require "tmpdir"
      require "yaml"
      class CredentialsApp < Rails::Application; end
      dir = Dir.mktmpdir
      File.write(File.join(dir, "master.key"), ActiveSupport::EncryptedConfiguration.generate_key)
      credentials = ActiveSupport::EncryptedConfiguration.new(
        config_path: File.join(dir, "credentials.yml.enc"), key_path: File.join(dir, "master.key"),
        env_key: "RAILS_MASTER_KEY", raise_if_missing_key: true
      )
      credentials.write({ "log_ingestion" => { "url" => "http://creds.test", "api_key" => "creds-key",
                                               "service" => "creds-svc" } }.to_yaml)
      Rails.application.credentials = credentials
      LogIngestionClient.configure
      puts [LogIngestionClient.api_url, LogIngestionClient.api_key, LogIngestionClient.service,
            LogIngestionClient.configured?].inspect
      LogIngestionClient.shutdown(timeout: 0)
    RUBY
    expect(out).to eq(['["http://creds.test", "creds-key", "creds-svc", true]'])
  end

  it "keeps the environment's settings when a setter is used before configure" do
    env = { "LOG_INGESTION_URL" => "http://127.0.0.1:9", "LOG_INGESTION_API_KEY" => "k" }
    out = settings_after("LogIngestionClient.batch_size = 7", %i[api_url batch_size configured?], env: env)
    expect(out).to eq(['["http://127.0.0.1:9", 7, true]'])
  end

  it "takes the guide's settings in a configure block" do
    out = run_client(<<~RUBY)
      LogIngestionClient.configure do |c|
        c.test_mode = true
        c.batch_size = 10
        c.batch_interval = 5
        c.max_retries = 3
        c.retry_delay = 1
      end
      puts [LogIngestionClient.batch_size, LogIngestionClient.batch_interval, LogIngestionClient.max_retries].inspect
    RUBY
    expect(out).to eq(["[10, 5, 3]"])
  end

  it "raises ConfigurationError from configure for a bad setting" do
    out = run_client(<<~RUBY)
      begin
        LogIngestionClient.configure { |c| c.batch_size = "ten" }
      rescue LogIngestion::ConfigurationError => e
        puts e.message
      end
    RUBY
    expect(out.first).to include("batch_size must be an Integer")
  end

  it "records every level method's entries in test mode" do
    out = run_client(<<~RUBY)
      LogIngestionClient.test_mode!
      LogIngestionClient::LOG_LEVELS.each { |level| LogIngestionClient.public_send(level.downcase, "m", { level: level }) }
      puts LogIngestionClient.recorded_entries.map { |e| e[:level] }.join(",")
      LogIngestionClient.clear_recorded_entries
      puts LogIngestionClient.recorded_entries.size
    RUBY
    expect(out).to eq(["DEBUG,INFO,WARN,WARNING,ERROR,FATAL,CRITICAL", "0"])
  end

  it "warns once and ignores calls when nothing is configured" do
    _out, err, status = run_ruby(<<~RUBY, env: { "LOG_INGESTION_URL" => nil, "LOG_INGESTION_API_KEY" => nil })
      require "log_ingestion"
      3.times { LogIngestionClient.info("ignored") }
    RUBY
    expect(status).to be_success
    expect(err.scan("not configured").size).to eq(1)
  end
end
