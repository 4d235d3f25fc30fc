# frozen_string_literal: true

require "spec_helper"

# The gem's one metadata converter (ext/log_ingestion/src/metadata.rs): what delivery
# sends and what test mode records.
RSpec.describe "the native binding's metadata conversion", :native, :gc_stress do
  let(:convert) { ->(input) { JSON.parse(native_call { LogIngestion::Native.encode_metadata(input) }) } }
  let(:entry) { ->(fields) { JSON.parse(native_call { LogIngestion::Native.entry_json(fields, "svc") }) } }

  it_behaves_like "a metadata converter"

  # The exact text, not just the data: keys sorted by their bytes at every level, the
  # last of equal keys kept, strings escaped and numbers written as serde_json writes them.
  it "writes sorted keys, the last of equal keys, and serde_json's escapes and numbers" do
    input = { "b" => { z: 1, "y" => [2.5, 1e20, -0.0, 1.0] }, a: 1, "a" => "q\"\n\u0001\u007f/é",
              "\u00e9" => nil, "B" => 2**64 - 1, "a\u0000" => :s, "" => -2**63 }
    expect(native_call { LogIngestion::Native.encode_metadata(input) }).to eq(
      "{\"\":-9223372036854775808,\"B\":18446744073709551615,\"a\":\"q\\\"\\n\\u0001\u007f/é\"," \
      "\"a\\u0000\":\"s\",\"b\":{\"y\":[2.5,1e+20,-0.0,1.0],\"z\":1},\"é\":null}"
    )
  end

  it "writes non-Hash metadata, truncation markers and cuts as exact text" do
    expect(native_call { LogIngestion::Native.encode_metadata([nil, true, false]) })
      .to eq('{"value":[null,true,false]}')
    expect(native_call { LogIngestion::Native.encode_metadata("x") }).to eq('{"value":"x"}')
    expect(native_call { LogIngestion::Native.encode_metadata({}) }).to eq("{}")
    expect(native_call { LogIngestion::Native.encode_metadata({ l: [[], {}], c: MetadataCases.cyclic_array }) })
      .to eq('{"c":[1,"[cycle]"],"l":[[],{}]}')
    input = (1..1001).to_h { |i| ["k#{i}", i] } # built outside native_call: fast under GC.stress
    wide = native_call { LogIngestion::Native.encode_metadata(input) }
    expect(wide).to start_with('{"[truncated]":true,"k1":1,"k10":10,"k100":100,')
    expect(JSON.parse(wide).size).to eq(1001)
  end

  it "cuts messages longer than 64 KiB, suffix included, at a character boundary" do
    message = entry.call(message: "ü" * 40_000)["message"]
    expect(message.bytesize).to be <= LogIngestion::Native::SERVER_DEFAULT_MAX_MESSAGE_BYTES
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
