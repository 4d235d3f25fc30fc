# frozen_string_literal: true

require "spec_helper"

RSpec.describe LogIngestion::MetadataSerializer do
  let(:convert) { ->(input) { described_class.call(input) } }

  it_behaves_like "a metadata converter"

  it "cuts messages longer than 64 KiB, suffix included, at a character boundary" do
    message = described_class.message("ü" * 40_000)
    expect(message.bytesize).to be <= 64 * 1024
    expect(message).to end_with("...[truncated]").and be_valid_encoding
  end

  it "writes non-String messages with to_s" do
    expect(described_class.message(:started)).to eq("started")
  end
end

RSpec.describe "the native binding's metadata conversion", :native, :gc_stress do
  let(:convert) { ->(input) { JSON.parse(native_call { LogIngestion::Native.encode_metadata(input) }) } }

  it_behaves_like "a metadata converter"

  it "gives exactly what the Ruby serializer gives, cuts included" do
    inputs = MetadataCases::CASES.map { |_, input, _| input } +
             [MetadataCases.deep_input, MetadataCases.wide_input, MetadataCases.long_string_input,
              MetadataCases.huge_input]
    inputs.each do |input|
      expect(convert.call(input)).to eq(JSON.parse(JSON.generate(LogIngestion::MetadataSerializer.call(input))))
    end
  end

  it "cuts messages exactly as the Ruby serializer does" do
    message = "ü" * 40_000
    expect(native_call { LogIngestion::Native.encode_message(message) }).to eq(LogIngestion::MetadataSerializer.message(message))
  end
end
