# frozen_string_literal: true

module LogIngestion
  # Turns a metadata argument of any Ruby type into JSON-compatible data made of
  # Hash (String keys), Array, String, Integer, Float, true, false and nil.
  #
  # This is the Ruby twin of the native binding's converter
  # (ext/log_ingestion/src/metadata.rs); test mode uses it, so recorded entries
  # look exactly like what the native client sends. Both follow the same rules:
  # Time, and objects whose getutc is a Time (TimeWithZone) -> ISO 8601 UTC with
  # microseconds, Symbol and unknown objects -> to_s, other objects answering
  # iso8601 (Date, DateTime) -> iso8601,
  # non-finite floats and integers beyond 64 bits -> to_s; cycles, depth, collection
  # size and total text size are cut with visible markers, never raised on.
  # It never mutates its input and never raises.
  class MetadataSerializer
    # Sized so the JSON stays within the server's default limits (metadata 64 KiB,
    # depth 16, message 64 KiB): text is budgeted, plus VALUE_OVERHEAD per key and value.
    MAX_DEPTH = 12
    MAX_COLLECTION_SIZE = 1000
    MAX_STRING_BYTES = 16 * 1024
    MAX_TOTAL_BYTES = 40 * 1024
    VALUE_OVERHEAD = 4
    CYCLE = "[cycle]"
    DEPTH_LIMIT = "[depth limit]"
    TRUNCATED = "[truncated]"
    TRUNCATED_SUFFIX = "...[truncated]"
    INT_RANGE = (-(2**63)...(2**64)).freeze
    PASS_THROUGH_ENCODINGS = [Encoding::UTF_8, Encoding::US_ASCII, Encoding::BINARY].freeze

    MAX_MESSAGE_BYTES = 64 * 1024

    # The metadata Hash to send for +metadata+ (nil -> {}, non-Hash -> {"value" => ...}).
    def self.call(metadata)
      new.serialize(metadata)
    end

    # The message to send: +message+ as valid UTF-8 text, cut to MAX_MESSAGE_BYTES
    # (suffix included) at a character boundary.
    def self.message(message)
      string = message.is_a?(String) ? message : message.to_s
      serializer = new
      string = serializer.send(:utf8, string)
      return string if string.bytesize <= MAX_MESSAGE_BYTES

      "#{string.byteslice(0, MAX_MESSAGE_BYTES - TRUNCATED_SUFFIX.bytesize).scrub('')}#{TRUNCATED_SUFFIX}"
    end

    def initialize
      @remaining = MAX_TOTAL_BYTES
      @open_collections = {}
    end

    def serialize(metadata)
      case metadata
      when nil then {}
      when Hash then convert(metadata, 1)
      else { "value" => convert(metadata, 1) }
      end
    end

    private

    def convert(value, depth)
      charge(VALUE_OVERHEAD)
      case value
      when nil, true, false then value
      when Integer then INT_RANGE.cover?(value) ? value : text(value.to_s)
      when Float then value.finite? ? value : text(value.to_s)
      when String then text(value)
      when Symbol then text(value.name)
      when Time then iso8601_utc(value)
      when Hash then collection(value, depth) { convert_hash(value, depth) }
      when Array then collection(value, depth) { convert_array(value, depth) }
      else time_like(value) || text(describe(value))
      end
    end

    def iso8601_utc(time)
      time.getutc.strftime("%Y-%m-%dT%H:%M:%S.%6NZ")
    end

    # A Time stand-in (ActiveSupport::TimeWithZone, what Rails' Time.current returns)
    # whose getutc gives a Time: written as a Time, keeping the microseconds its
    # iso8601 would drop. nil for anything else.
    def time_like(value)
      return nil unless value.respond_to?(:getutc)

      utc = value.getutc
      utc.is_a?(Time) ? iso8601_utc(utc) : nil
    rescue StandardError
      nil
    end

    def collection(value, depth)
      return DEPTH_LIMIT if depth > MAX_DEPTH
      return CYCLE if @open_collections.key?(value.object_id)

      @open_collections[value.object_id] = true
      begin
        yield
      ensure
        @open_collections.delete(value.object_id)
      end
    end

    def convert_hash(hash, depth)
      result = {}
      hash.each_with_index do |(key, value), index|
        if index >= MAX_COLLECTION_SIZE || @remaining.zero?
          result[TRUNCATED] = true
          break
        end
        charge(VALUE_OVERHEAD)
        result[text(key_name(key))] = convert(value, depth + 1)
      end
      result
    end

    def convert_array(array, depth)
      result = []
      array.each_with_index do |value, index|
        if index >= MAX_COLLECTION_SIZE || @remaining.zero?
          result << TRUNCATED
          break
        end
        result << convert(value, depth + 1)
      end
      result
    end

    def charge(bytes)
      @remaining = @remaining > bytes ? @remaining - bytes : 0
    end

    def key_name(key)
      case key
      when String then key
      when Symbol then key.name
      else describe(key)
      end
    end

    def describe(value)
      return value.iso8601.to_s if value.respond_to?(:iso8601)

      value.to_s
    rescue StandardError
      "#<#{value.class}>"
    end

    # Valid UTF-8, cut to the per-string and total budgets at a character boundary.
    def text(string)
      string = utf8(string)
      limit = [MAX_STRING_BYTES, @remaining].min
      if string.bytesize > limit
        string = "#{string.byteslice(0, limit).scrub('')}#{TRUNCATED_SUFFIX}"
        @remaining -= limit
      else
        @remaining -= string.bytesize
      end
      string
    end

    def utf8(string)
      string = string.to_s unless string.is_a?(String)
      if PASS_THROUGH_ENCODINGS.include?(string.encoding)
        string.dup.force_encoding(Encoding::UTF_8).scrub
      else
        string.encode(Encoding::UTF_8, invalid: :replace, undef: :replace)
      end
    end
  end
end
