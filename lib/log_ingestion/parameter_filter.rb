# frozen_string_literal: true

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
        new(filters)
      end
    end

    attr_reader :filters

    # +filters+: what `config.filter_parameters` takes (Strings, Symbols, Regexps, Procs).
    def initialize(filters = [])
      @filters = filters.dup.freeze
      @filter = ActiveSupport::ParameterFilter.new(@filters)
      @text_pattern = build_text_pattern(@filters)
    end

    # Text (a log line) with the values of matching keys masked where they appear
    # as `key: "v"`, `key=>"v"`, `"key":"v"`, `key: :v`, `key=v` or `["key", v]` -- how
    # Rails and Ruby print hashes, query strings and SQL binds. Only String/Symbol/Regexp filters apply.
    def filter_text(text)
      return text if @text_pattern.nil? || !text.is_a?(String) || !text.match?(@text_pattern)

      text.gsub(@text_pattern) { "#{Regexp.last_match(1)}#{quoted_mask(Regexp.last_match(2))}" }
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
    # itself (which ActiveSupport's filter cannot walk) is first cut at the cycle by
    # MetadataSerializer, then filtered.
    def call(metadata)
      filter_hash(metadata)
    rescue SystemStackError
      filter_hash(MetadataSerializer.call(metadata))
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

      query_string.split(/([&;])/).map { |part| filter_query_pair(part) }.join
    end

    private

    VALUE = /("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|:?[^\s,;&}\])]+)/.freeze
    private_constant :VALUE

    def build_text_pattern(filters)
      names = filters.filter_map do |filter|
        case filter
        when String, Symbol then Regexp.escape(filter.to_s)
        when Regexp then filter.source
        end
      end
      return nil if names.empty?

      key = /[\w.\[\]-]*(?:#{names.join('|')})[\w.\[\]-]*/
      # key => v, key: v, "key":v, key=v, and ActiveRecord's bind rendering ["key", v]
      /((?::?["']?#{key}["']?\s*(?:=>|:|=)|\[\s*"#{key}"\s*,)\s*)#{VALUE}/i
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
