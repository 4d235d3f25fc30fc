# frozen_string_literal: true

require "json"
require "strscan"
require "uri"
require "active_support/parameter_filter"

module LogIngestion
  # Masks sensitive values (by key name, like Rails' `filter_parameters`) in the
  # metadata, params, query strings and SQL bind values the Rails glue logs.
  #
  # Owns: the list of filters in force (`ParameterFilter.current`, set by the
  # Railtie from `Rails.application.config.filter_parameters`) and how each shape
  # is masked. Never mutates its input, never sends anything, never raises on odd
  # input (a value it cannot read is returned as it came).
  class ParameterFilter
    MASK = ActiveSupport::ParameterFilter::FILTERED

    class << self
      # The filter the glue uses. Defaults to the Rails application's
      # `filter_parameters` when an application exists, else to no filtering.
      def current
        @current ||= from_rails_application
      end

      attr_writer :current

      # A filter built from the running application's `config.filter_parameters`.
      def from_rails_application
        filters = if defined?(::Rails) && ::Rails.respond_to?(:application) && ::Rails.application
                    Array(::Rails.application.config.filter_parameters)
                  else
                    []
                  end
        new(filters, rails: true)
      end
    end

    attr_reader :filters

    # +filters+: what `config.filter_parameters` takes (Strings, Symbols, Regexps, Procs).
    # rails: true when they are the application's own `config.filter_parameters` (what
    # Rails already applied to the params it instruments).
    def initialize(filters = [], rails: false)
      @filters = filters.dup.freeze
      @rails = rails
      @filter = ActiveSupport::ParameterFilter.new(@filters)
      @key_names = build_key_names(@filters)
      @key_cache = {}
      # Whether a Hash whose keys none of the filters matches can be passed on as it is:
      # not when a filter is a Proc (it sees values too) or names a nested path
      # (`user.password`, matched by ActiveSupport against the dotted path, not a key).
      @keys_decide = @filters.all? do |filter|
        (filter.is_a?(String) || filter.is_a?(Symbol) || filter.is_a?(Regexp)) && !filter_names_path?(filter)
      end
    end

    # Text (a log line) with the values of matching keys masked where they appear
    # as `key: "v"`, `key=>"v"`, `"key":"v"`, `key: :v`, `key=v` or `["key", v]` -- how
    # Rails and Ruby print hashes, query strings and SQL binds. A key matches when a
    # String/Symbol filter (any case) or a Regexp filter matches inside it, as in
    # `config.filter_parameters`; Proc filters do not apply to text. A value that is
    # already the mask (Rails filtered it) is left as it is.
    #
    # Linear in the text's length (it runs on the request thread, on lines as long as a
    # `Parameters: {...}` dump): one left-to-right scan finds each `key separator` pair
    # (a key is a maximal run of key characters, read once, possessively), its name is
    # tested on its own, and only a matching key's value is read.
    def filter_text(text)
      return text if @key_names.nil? || !text.is_a?(String)

      text = text.scrub unless text.valid_encoding? # a regexp raises on invalid bytes
      return text unless text.match?(@key_names)

      mask_values(text)
    end

    # True when these are the application's own filters, which Rails applies itself.
    def rails_filters?
      @rails
    end

    # True when nothing is filtered.
    def empty?
      @filters.empty?
    end

    # A copy of +hash+ with every value whose key matches replaced by the mask, at any depth.
    def filter_hash(hash)
      return hash if empty? || !hash.is_a?(Hash)

      @filter.filter(hash)
    end

    # The client's metadata_filter interface (see Configuration#metadata_filter): a copy
    # of +metadata+ with matching keys masked at any depth. A Hash that contains
    # itself (which ActiveSupport's filter cannot walk) is first converted by the native
    # converter, which cuts it at the cycle, then filtered.
    #
    # Fast path: a Hash none of whose keys (at any depth) a filter matches is returned as
    # it is, without the copy ActiveSupport's filter makes -- the common case of an entry.
    def call(metadata)
      return metadata if @keys_decide && !(@key_names && sensitive_keys?(metadata, 0))

      filter_hash(metadata)
    rescue SystemStackError
      filter_hash(JSON.parse(Native.encode_metadata(metadata)))
    end

    # +value+ masked when +key+ matches (for SQL binds and single attributes).
    def filter_value(key, value)
      return value if empty? || key.nil?

      @filter.filter(key.to_s => value).fetch(key.to_s, value)
    end

    # An Array with each Hash element filtered (e.g. job arguments).
    def filter_array(array)
      return array if empty? || !array.is_a?(Array)

      array.map do |element|
        case element
        when Hash then filter_hash(element)
        when Array then filter_array(element)
        else element
        end
      end
    end

    # Any value: Hashes and Arrays are filtered, anything else is returned as is.
    def filter(value)
      case value
      when Hash then filter_hash(value)
      when Array then filter_array(value)
      else value
      end
    end

    # +query_string+ with the value of every matching key replaced by the mask;
    # keys, order and the rest of the text are kept as sent.
    def filter_query_string(query_string)
      return query_string if empty? || query_string.nil? || query_string.empty?
      # Fast path: no filter matches anywhere in the text and nothing in it is escaped.
      return query_string if @keys_decide && !query_string.match?(@key_names) && !query_string.match?(/[%+]/)

      query_string.split(/([&;])/).map { |part| filter_query_pair(part) }.join
    end

    private

    # A key's characters: word characters and `.[]-` (`user.password`, `user[password]`).
    KEY_CHARS = '\w.\[\]-'
    # One `key separator` pair, whitespace after the separator included: `key => `,
    # `key: `, `"key":`, `'key' = `, `:key=>`, and ActiveRecord's bind rendering
    # `["key", `. A key is a maximal run of KEY_CHARS (the lookbehind refuses to start
    # inside one, the possessive `++` never gives characters back), so each run is
    # read once: the scan is linear. Whitespace is possessive for the same reason.
    KEY_SEPARATOR = /
      :?["']?(?<![#{KEY_CHARS}])(?<key>[#{KEY_CHARS}]++)["']?\s*+(?:=>|:|=)\s*+
      | \[\s*+"(?<bind_key>[#{KEY_CHARS}]++)"\s*+,\s*+
    /x.freeze
    # The value after a separator: the mask itself (left as it is: Rails already
    # filtered it), a double- or single-quoted string, or a bare word up to a delimiter.
    # A quote ends a bare word when a delimiter or the end of the text follows it (the
    # closing quote of `"/orders?token=abc" for ...`); inside a word (`it's`) it is part
    # of the value. The mask counts as the mask before such a quote too
    # (`"...&token=[FILTERED]"`), so it is never masked again as `[FILTERED]]`.
    VALUE = /
      #{Regexp.escape(MASK)}(?=["']?(?:[\s,;&}\])]|\z))
      | "(?:[^"\\]++|\\.)*+"
      | '(?:[^'\\]++|\\.)*+'
      | :?(?:[^\s,;&}\])"']++|["'](?![\s,;&}\])]|\z))++
    /x.freeze
    private_constant :KEY_CHARS, :KEY_SEPARATOR, :VALUE

    # Deeper than this a Hash is handed to ActiveSupport's filter without looking.
    MAX_SCAN_DEPTH = 8
    KEY_CACHE_LIMIT = 1024
    private_constant :MAX_SCAN_DEPTH, :KEY_CACHE_LIMIT

    # True when a key of +value+ (a Hash, or Hashes inside Arrays) matches a filter, or
    # the structure is deeper than MAX_SCAN_DEPTH (then the full filter decides).
    def sensitive_keys?(value, depth)
      return true if depth > MAX_SCAN_DEPTH

      case value
      when Hash
        value.any? do |key, inner|
          sensitive_key?(key) || ((inner.is_a?(Hash) || inner.is_a?(Array)) && sensitive_keys?(inner, depth + 1))
        end
      when Array then value.any? { |inner| (inner.is_a?(Hash) || inner.is_a?(Array)) && sensitive_keys?(inner, depth + 1) }
      else false
      end
    end

    # Whether a filter matches +key+; the answers for the first KEY_CACHE_LIMIT Symbol
    # keys are kept (an app's metadata uses the same few keys on every entry).
    def sensitive_key?(key)
      return key.to_s.match?(@key_names) unless key.is_a?(Symbol)

      known = @key_cache[key]
      return known unless known.nil?

      answer = key.match?(@key_names)
      @key_cache[key] = answer if @key_cache.size < KEY_CACHE_LIMIT
      answer
    end

    def filter_names_path?(filter)
      filter.is_a?(Regexp) ? filter.source.include?("\\.") : filter.to_s.include?(".")
    end

    # One Regexp that matches inside a key name when a String/Symbol filter (any case,
    # as ActiveSupport::ParameterFilter does) or a Regexp filter (with its own flags)
    # does; nil when there are none.
    def build_key_names(filters)
      names = filters.filter_map do |filter|
        case filter
        when String, Symbol then Regexp.new(Regexp.escape(filter.to_s), Regexp::IGNORECASE)
        when Regexp then filter
        end
      end
      names.empty? ? nil : Regexp.union(names)
    end

    # +text+ with the value after each matching key replaced by the mask: one pass with
    # a StringScanner (fixed_anchor, so the lookbehind sees what precedes the position);
    # only the values of matching keys are read, and the text between them is copied once.
    def mask_values(text)
      scanner = StringScanner.new(text, fixed_anchor: true)
      filtered = nil
      copied = 0
      while scanner.skip_until(KEY_SEPARATOR)
        next unless (scanner[:key] || scanner[:bind_key]).match?(@key_names)

        value_start = scanner.pos
        value = scanner.scan(VALUE) or next
        (filtered ||= +"") << text.byteslice(copied, value_start - copied) << quoted_mask(value)
        copied = scanner.pos
      end
      filtered ? filtered << text.byteslice(copied, text.bytesize - copied) : text
    end

    def quoted_mask(value)
      value.start_with?('"', "'") ? "\"#{MASK}\"" : MASK
    end

    def filter_query_pair(part)
      key, separator, value = part.partition("=")
      return part if separator.empty?

      original = unescape(value)
      filtered = filter_value(unescape(key), original)
      if filtered == original then part
      elsif filtered == MASK then "#{key}=#{MASK}"
      else "#{key}=#{::URI.encode_www_form_component(filtered.to_s)}"
      end
    end

    def unescape(text)
      ::URI.decode_www_form_component(text)
    rescue ArgumentError
      text
    end
  end
end
