# frozen_string_literal: true

require "spec_helper"

RSpec.describe LogIngestion::Configuration do
  it "defaults to batches of 512 entries or 1 s, 5 retries from 0.5 s, 5 min of an outage, and a 5 s shutdown" do
    config = described_class.new
    expect(config.to_h).to include(batch_size: 512, batch_interval: 1.0, max_retries: 5, retry_delay: 0.5,
                                   max_retry_elapsed: 300.0,
                                   shutdown_timeout: 5.0, drop_policy: :newest, gzip: true, enable_batching: true,
                                   max_queue_bytes: 16 * 1024 * 1024, service: "rails-app")
  end

  it "reads the URL, API key and service from the environment" do
    env = { "LOG_INGESTION_URL" => "http://logs.test", "LOG_INGESTION_API_KEY" => "k", "LOG_INGESTION_SERVICE" => "shop" }
    config = described_class.new.load_environment(env)
    expect([config.api_url, config.api_key, config.service]).to eq(["http://logs.test", "k", "shop"])
  end

  it "accepts the guide's explicit settings" do
    config = described_class.new(api_url: "http://localhost:8080", api_key: "dev-api-key-12345", batch_size: 10,
                                 batch_interval: 5, max_retries: 3, retry_delay: 1)
    expect(config.validate!.to_engine_hash).to include("batch_size" => 10, "batch_interval" => 5.0, "retry_delay" => 1.0)
  end

  it "hands max_retry_elapsed to the engine in seconds" do
    config = described_class.new(api_url: "http://x.test", api_key: "k", max_retry_elapsed: 90)
    expect(config.validate!.to_engine_hash).to include("max_retry_elapsed" => 90.0)
  end

  # What the engine's tests (ext/engine/tests) exercise is reached through these names.
  it "hands the delivery policy's settings to the engine under the engine's names and types" do
    config = described_class.new(api_url: "http://x.test/", api_key: "k", drop_policy: :oldest, gzip: false,
                                 enable_batching: false, max_batch_bytes: 4096, max_queue_bytes: 8192,
                                 read_timeout: 2, open_timeout: 1)
    expect(config.validate!.to_engine_hash).to include(
      "api_url" => "http://x.test", "drop_policy" => "oldest", "gzip" => false, "enable_batching" => false,
      "max_batch_bytes" => 4096, "max_queue_bytes" => 8192, "read_timeout" => 2.0, "open_timeout" => 1.0
    )
  end

  it "is deliverable only with both a URL and a key, or in test mode" do
    expect(described_class.new(api_url: "http://x.test").deliverable?).to be(false)
    expect(described_class.new(api_url: "http://x.test", api_key: "k").deliverable?).to be(true)
    expect(described_class.new(test_mode: true).deliverable?).to be(true)
  end

  {
    batch_size: 0, batch_interval: -1, max_retries: -1, retry_delay: 0, max_queue_bytes: 10,
    drop_policy: :random, api_url: "ftp://logs.test", on_error: 42, gzip: "yes", enable_batching: nil,
    shutdown_timeout: Float::NAN, service: "", max_retry_delay: 0.1, metadata_filter: "password",
    max_retry_elapsed: 0, open_timeout: 1e-12, read_timeout: 0.0005
  }.each do |setting, bad|
    it "rejects #{setting} = #{bad.inspect} with a ConfigurationError naming it" do
      config = described_class.new(setting => bad)
      expect { config.validate! }.to raise_error(LogIngestion::ConfigurationError, /#{setting} must be/)
    end
  end

  it "accepts nil or an object responding to #call as metadata_filter" do
    [nil, ->(metadata) { metadata }, LogIngestion::Client.new.method(:configured?)].each do |filter|
      expect(described_class.new(metadata_filter: filter).validate!.metadata_filter).to eq(filter)
    end
  end

  # The engine trusts its settings: a configuration changed after configure checked it
  # must not reach it unchecked (a batch_size of 0 would send empty batches forever).
  it "is checked again when a delivery starts", :native do
    config = described_class.new(api_url: "http://127.0.0.1:9", api_key: "k").validate!
    config.batch_size = 0
    expect { LogIngestion::EngineDelivery.new(config) }
      .to raise_error(LogIngestion::ConfigurationError, /batch_size must be/)
  end

  it "makes ConfigurationError an ArgumentError" do
    expect(LogIngestion::ConfigurationError.ancestors).to include(ArgumentError)
  end
end
