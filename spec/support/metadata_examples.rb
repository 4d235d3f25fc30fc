# frozen_string_literal: true

# Shared examples for a metadata converter: `convert` (let) maps an input to JSON data.
RSpec.shared_examples "a metadata converter" do
  MetadataCases::CASES.each do |description, input, expected|
    it(description) { expect(convert.call(input)).to eq(expected) }
  end

  it "cuts nesting deeper than MAX_DEPTH with a marker" do
    depth = 0
    node = convert.call(MetadataCases.deep_input)
    node = node.values.first and depth += 1 while node.is_a?(Hash)
    expect(node).to eq("[depth limit]")
    expect(depth).to eq(MetadataCases::MAX_DEPTH)
  end

  it "cuts collections after MAX_COLLECTION_SIZE elements with a marker" do
    list = convert.call(MetadataCases.wide_input)["list"]
    expect(list.size).to eq(MetadataCases::MAX_COLLECTION_SIZE + 1)
    expect(list.last).to eq("[truncated]")
  end

  it "cuts long strings at a character boundary with a suffix" do
    text = convert.call(MetadataCases.long_string_input)["text"]
    expect(text).to end_with("...[truncated]")
    expect(text).to be_valid_encoding
    expect(text.bytesize).to be <= MetadataCases::MAX_STRING_BYTES + 14
  end

  it "keeps the whole metadata within the total budget" do
    result = convert.call(MetadataCases.huge_input)
    expect(result["[truncated]"]).to be(true)
    expect(JSON.generate(result).bytesize).to be <= LogIngestion::Native::SERVER_DEFAULT_MAX_METADATA_BYTES
  end

  it "does not change its input" do
    input = { "list" => [1, 2], "time" => Time.at(0) }
    snapshot = Marshal.dump(input)
    convert.call(input)
    expect(Marshal.dump(input)).to eq(snapshot)
  end
end
