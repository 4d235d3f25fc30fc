# frozen_string_literal: true

require "date"
require "time"

# Metadata inputs and the JSON data the converter (the binding's MetadataConverter,
# ext/log_ingestion/src/metadata.rs) must turn them into.
module MetadataCases
  # The converter's cuts, as docs/gem.md states them.
  MAX_DEPTH = 12
  MAX_COLLECTION_SIZE = 1000
  MAX_STRING_BYTES = 16 * 1024

  Opaque = Struct.new(:name) do
    def to_s
      "opaque #{name}"
    end
  end

  # Answers like ActiveSupport::TimeWithZone: getutc is a Time, iso8601 drops the fraction.
  TimeWithZoneLike = Struct.new(:time) do
    def getutc
      time.getutc
    end

    def iso8601
      time.getlocal("+02:00").strftime("%Y-%m-%dT%H:%M:%S%:z")
    end
  end

  class Unprintable
    def to_s
      raise "no"
    end
  end

  # Answers iso8601, but raises there: written with to_s instead.
  class BrokenIso8601
    def iso8601
      raise "no"
    end

    def to_s
      "broken iso8601"
    end
  end

  def self.cyclic_hash
    hash = { "name" => "loop" }
    hash["self"] = hash
    hash
  end

  def self.cyclic_array
    array = [1]
    array << array
    array
  end

  def self.deep(levels)
    levels.times.reduce("leaf") { |inner, _| { "d" => inner } }
  end

  # [description, input, expected]
  CASES = [
    ["nil metadata is an empty object", nil, {}],
    ["scalars pass through", { "i" => 1, "f" => 2.5, "t" => true, "n" => nil, "s" => "x" },
     { "i" => 1, "f" => 2.5, "t" => true, "n" => nil, "s" => "x" }],
    ["symbol keys and values become strings", { user: :admin }, { "user" => "admin" }],
    ["Time becomes ISO 8601 UTC with microseconds", { at: Time.utc(2024, 1, 2, 3, 4, 5, 678_901.5) },
     { "at" => "2024-01-02T03:04:05.678901Z" }],
    ["a Time with an offset is written in UTC", { at: Time.new(2024, 1, 1, 12, 0, 0, "+02:00") },
     { "at" => "2024-01-01T10:00:00.000000Z" }],
    ["a TimeWithZone-like object is written as its UTC Time, microseconds kept",
     { at: TimeWithZoneLike.new(Time.utc(2024, 1, 2, 3, 4, 5, 678_901)) }, { "at" => "2024-01-02T03:04:05.678901Z" }],
    ["Date uses iso8601", { on: Date.new(2024, 2, 29) }, { "on" => "2024-02-29" }],
    ["other objects use to_s", { thing: Opaque.new("box") }, { "thing" => "opaque box" }],
    ["an object whose iso8601 raises is written with to_s", { at: BrokenIso8601.new }, { "at" => "broken iso8601" }],
    ["an object whose to_s raises becomes a placeholder", { bad: Unprintable.new },
     { "bad" => "#<MetadataCases::Unprintable>" }],
    ["non-string keys use to_s", { 1 => "one", nil => "nil" }, { "1" => "one", "" => "nil" }],
    ["a later key with the same text replaces an earlier one", { a: 1, "b" => 2, "a" => 3, b: [4] },
     { "a" => 3, "b" => [4] }],
    ["keys that equal once cut replace each other", { ("k" * 20_000) => 1, "#{'k' * 20_000}x" => 2 },
     { "#{'k' * MAX_STRING_BYTES}...[truncated]" => 2 }],
    ["nested hashes and arrays keep their shape", { a: [1, { b: [:c, nil] }] }, { "a" => [1, { "b" => ["c", nil] }] }],
    ["non-finite floats become strings", { nan: Float::NAN, inf: -Float::INFINITY }, { "nan" => "NaN", "inf" => "-Infinity" }],
    ["integers beyond 64 bits become strings", { big: 2**70, max: 2**64 - 1, min: -2**63 },
     { "big" => (2**70).to_s, "max" => 2**64 - 1, "min" => -2**63 }],
    ["non-Hash metadata is wrapped under value", [1, 2], { "value" => [1, 2] }],
    ["a Hash containing itself is cut at the cycle", cyclic_hash, { "name" => "loop", "self" => "[cycle]" }],
    ["an Array containing itself is cut at the cycle", { list: cyclic_array }, { "list" => [1, "[cycle]"] }],
    ["a repeated (not cyclic) Hash is written twice", { a: (shared = { "x" => 1 }), b: shared },
     { "a" => { "x" => 1 }, "b" => { "x" => 1 } }],
    ["Latin-1 text is transcoded to UTF-8", { name: "caf\xE9".dup.force_encoding("ISO-8859-1") }, { "name" => "café" }],
    ["invalid UTF-8 bytes are replaced", { raw: "ok\xFF".dup.force_encoding("UTF-8") }, { "raw" => "ok\uFFFD" }],
    ["Symbol names in another encoding are transcoded as Strings are",
     { "caf\xE9".dup.force_encoding("ISO-8859-1").to_sym => "k", v: "na\xEFve".dup.force_encoding("ISO-8859-1").to_sym },
     { "café" => "k", "v" => "naïve" }],
    ["Symbols made at run time (String#to_sym) are written by name", { "made-#{1}".to_sym => "made-#{2}".to_sym },
     { "made-1" => "made-2" }]
  ].freeze

  # Inputs whose exact output is checked structurally (cuts).
  def self.deep_input
    { "root" => deep(40) }
  end

  def self.wide_input
    { "list" => (1..5000).to_a }
  end

  def self.long_string_input
    { "text" => "é" * 20_000 }
  end

  def self.huge_input
    (1..200).to_h { |i| ["k#{i}", "v" * 1000] }
  end
end
