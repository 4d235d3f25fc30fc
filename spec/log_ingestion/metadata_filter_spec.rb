# frozen_string_literal: true

require "spec_helper"
require "logger"
require "stringio"

# The metadata_filter setting: every entry's metadata goes through it on the
# caller's thread before it is converted, and a failing filter never raises into
# the caller nor lets the unfiltered metadata out.
RSpec.describe "metadata_filter" do
  include Subprocess

  let(:mask_secrets) do
    lambda do |metadata|
      metadata.to_h { |key, value| [key, %w[password token].include?(key.to_s) ? "[MASKED]" : value] }
    end
  end

  def test_client(**settings)
    LogIngestion::Client.new.configure(LogIngestion::Configuration.new(test_mode: true, service: "filter-spec",
                                                                       **settings))
  end

  describe "in test mode" do
    it "filters the metadata of log calls" do
      client = test_client(metadata_filter: mask_secrets)
      client.log("INFO", "signed in", { user: "ann", password: "x" })
      expect(client.recorded_entries.last[:metadata]).to eq("user" => "ann", "password" => "[MASKED]")
    end

    it "filters the metadata of send_log entries" do
      client = test_client(metadata_filter: mask_secrets)
      client.send_log({ level: "INFO", message: "direct", metadata: { token: "t", id: 7 } })
      expect(client.recorded_entries.last[:metadata]).to eq("token" => "[MASKED]", "id" => 7)
    end

    it "runs the filter on the caller's thread" do
      threads = []
      client = test_client(metadata_filter: ->(metadata) { threads.push(Thread.current).then { metadata } })
      client.log("INFO", "where", { a: 1 })
      expect(threads).to eq([Thread.current])
    end

    it "leaves metadata as it is without a filter" do
      client = test_client
      client.log("INFO", "plain", { password: "x" })
      expect(client.recorded_entries.last[:metadata]).to eq("password" => "x")
    end

    it "applies a filter set after configure" do
      client = test_client
      client.update_setting(:metadata_filter, mask_secrets)
      client.log("INFO", "later", { password: "x" })
      expect(client.recorded_entries.last[:metadata]).to eq("password" => "[MASKED]")
    end
  end

  describe "a filter that fails" do
    let(:log_output) { StringIO.new }

    around do |example|
      previous = LogIngestion.logger
      LogIngestion.logger = Logger.new(log_output)
      example.run
    ensure
      LogIngestion.logger = previous
    end

    it "never raises into the caller; the entry carries the error instead of its metadata" do
      client = test_client(metadata_filter: ->(_metadata) { raise KeyError, "boom" })
      expect(client.log("ERROR", "kept", { password: "x" })).to be(true)
      expect(client.recorded_entries.last).to include(message: "kept",
                                                      metadata: { "metadata_filter_error" => "KeyError: boom" })
    end

    it "is reported once through the gem's logger" do
      client = test_client(metadata_filter: ->(_metadata) { raise KeyError, "boom" })
      3.times { client.log("INFO", "again", { a: 1 }) }
      expect(log_output.string.scan("metadata_filter failed (KeyError: boom)").size).to eq(1)
    end

    it "is a failure when the filter answers something other than a Hash" do
      client = test_client(metadata_filter: ->(_metadata) { "password=x" })
      client.send_log({ message: "odd", metadata: { password: "x" } })
      expect(client.recorded_entries.last[:metadata])
        .to eq("metadata_filter_error" => "TypeError: metadata_filter returned String, not a Hash")
    end
  end

  describe "LogIngestionClient's level methods" do
    it "filter the metadata they are given" do
      out, err, status = run_ruby(<<~RUBY)
        require "log_ingestion"
        LogIngestionClient.test_mode!
        LogIngestionClient.metadata_filter = ->(m) { m.merge(password: "[MASKED]") }
        LogIngestionClient.info("Signed in", { password: "x", id: 1 })
        p LogIngestionClient.recorded_entries.last[:metadata]
      RUBY
      expect(status).to be_success, err
      expect(out.chomp).to eq('{"id"=>1, "password"=>"[MASKED]"}') # as sent: the converter's objects sort their keys
    end
  end

  describe "with the native engine", :native do
    let(:server) { FakeIngestionServer.start }
    let(:client) do
      LogIngestion::Client.new.configure(
        LogIngestion::Configuration.new(api_url: server.url, api_key: "test-key", service: "filter-spec",
                                        batch_interval: 0.05, metadata_filter: mask_secrets)
      )
    end

    after do
      client.shutdown(timeout: 1)
      server.stop
    end

    it "sends queued and direct entries filtered" do
      client.log("INFO", "queued", { password: "x" })
      client.send_log({ message: "direct", metadata: { token: "t" } })
      expect(client.flush(timeout: 10)).to be(true)
      metadata = server.wait_for_entries(2).to_h { |entry| [entry["message"], entry["metadata"]] }
      expect(metadata).to eq("queued" => { "password" => "[MASKED]" }, "direct" => { "token" => "[MASKED]" })
    end

    it "keeps the running delivery when only the filter changes" do
      client.log("INFO", "before")
      client.update_setting(:metadata_filter, nil)
      client.log("INFO", "after")
      expect(client.stats[:enqueued]).to eq(2)
    end
  end
end
