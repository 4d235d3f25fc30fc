# frozen_string_literal: true

require "spec_helper"

# The gem's one metadata converter (ext/log_ingestion/src/metadata.rs): what delivery
# sends and what test mode records.
RSpec.describe "the native binding's metadata conversion", :native, :gc_stress do
  let(:convert) { ->(input) { JSON.parse(native_call { LogIngestion::Native.encode_metadata(input) }) } }
  let(:entry) { ->(fields) { JSON.parse(native_call { LogIngestion::Native.entry_json(fields, "svc") }) } }

  it_behaves_like "a metadata converter"

  it "cuts messages longer than 64 KiB, suffix included, at a character boundary" do
    message = entry.call(message: "ü" * 40_000)["message"]
    expect(message.bytesize).to be <= 64 * 1024
    expect(message).to end_with("...[truncated]").and be_valid_encoding
  end

  it "writes non-String messages with to_s" do
    expect(entry.call(message: :started)["message"]).to eq("started")
  end

  it "fills a send_log entry's defaults: now, the configured service, INFO, an empty message, {}" do
    filled = entry.call({})
    expect(filled).to include("service" => "svc", "level" => "INFO", "message" => "", "metadata" => {})
    expect(filled["timestamp"]).to match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\z/)
  end

  it "writes a Time timestamp in the entry format and keeps a String one as given" do
    at = Time.new(2024, 1, 1, 12, 0, 0.5r, "+02:00")
    expect(entry.call(timestamp: at)["timestamp"]).to eq("2024-01-01T10:00:00.500000Z")
    expect(entry.call("timestamp" => "2024-01-01T00:00:00Z")["timestamp"]).to eq("2024-01-01T00:00:00Z")
  end

  it "raises ArgumentError for an unknown level" do
    expect { entry.call(level: "LOUD") }.to raise_error(ArgumentError, /LOUD/)
  end
end
