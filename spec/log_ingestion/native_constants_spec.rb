# frozen_string_literal: true

require "spec_helper"

# What Ruby and Rust must agree on, read from the one definition the extension exposes
# (LogIngestion::Native's constants: the wire crate's levels and limits, the engine's
# failure kinds) and compared with the places that cannot read it: the level list
# LogIngestionClient defines its methods from when the gem is required (before the
# extension loads, which a log call does), the RBS signatures and the docs' table.
RSpec.describe "the lists and limits the extension defines", :native do
  root = File.expand_path("../..", __dir__)

  before { LogIngestion::Native.load! }

  it "gives the levels the server accepts, which are the client's levels in the same order" do
    expect(LogIngestion::Native::LEVELS).to eq(LogIngestion::Levels::ALL)
    expect(LogIngestionClient::LOG_LEVELS).to eq(LogIngestion::Native::LEVELS)
  end

  it "gives the failure kinds on_error receives, which the RBS type error_kind lists" do
    rbs = File.read(File.join(root, "sig/log_ingestion/client.rbs"))
    alias_text = rbs[/^\s*type error_kind = (.*?)\n\s*type /m, 1]
    expect(alias_text).not_to be_nil
    expect(alias_text.scan(/"([a-z_]+)"/).flatten).to eq(LogIngestion::Native::ERROR_KINDS)
  end

  it "gives the failure kinds the docs' table describes" do
    table = File.read(File.join(root, "docs/gem.md"))[/^## on_error kinds\n(.*?)\n\n/m, 1]
    documented = table.lines.drop(2).flat_map { |row| row.split("|")[1].scan(/`([a-z_]+)`/).flatten }
    expect(documented).to eq(LogIngestion::Native::ERROR_KINDS)
  end

  it "includes the kind the Ruby side reports its own failures as" do
    expect(LogIngestion::Native::ERROR_KINDS).to include("internal")
  end

  it "caps what the converter sends within the server's default limits" do
    native = LogIngestion::Native
    expect(native::MAX_MESSAGE_BYTES).to be <= native::SERVER_DEFAULT_MAX_MESSAGE_BYTES
    expect(native::MAX_METADATA_DEPTH).to be < native::SERVER_DEFAULT_MAX_METADATA_DEPTH
    expect(native::MAX_METADATA_TEXT_BYTES).to be < native::SERVER_DEFAULT_MAX_METADATA_BYTES
    expect([native::MAX_COLLECTION_SIZE, native::MAX_STRING_BYTES, native::MAX_METADATA_DEPTH])
      .to eq([MetadataCases::MAX_COLLECTION_SIZE, MetadataCases::MAX_STRING_BYTES, MetadataCases::MAX_DEPTH])
  end

  it "is frozen" do
    %i[LEVELS ERROR_KINDS].each do |name|
      list = LogIngestion::Native.const_get(name)
      expect(list).to be_frozen
      expect(list).to all(be_frozen)
    end
  end
end
