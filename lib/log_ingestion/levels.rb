# frozen_string_literal: true

module LogIngestion
  # The seven log levels the service accepts and their lookup from any spelling
  # (String or Symbol, any case). Owns names only; never touches delivery.
  #
  # The one definition is the wire crate's Level, which the extension exposes as
  # LogIngestion::Native::LEVELS. ALL is written out here because LogIngestionClient
  # defines its level methods from it when the gem is required, before the extension
  # loads (a log call loads it); spec/log_ingestion/native_constants_spec.rb fails
  # when the two differ.
  module Levels
    ALL = %w[DEBUG INFO WARN WARNING ERROR FATAL CRITICAL].freeze

    LOOKUP = ALL.each_with_object({}) do |name, table|
      table[name] = name
      table[name.downcase] = name
      table[name.to_sym] = name
      table[name.downcase.to_sym] = name
    end.freeze
    private_constant :LOOKUP

    # The canonical (uppercase) name of +level+; ArgumentError when it is not one of the seven.
    def self.normalize(level)
      LOOKUP[level] || LOOKUP[level.to_s.upcase] ||
        raise(ArgumentError, "log level must be one of #{ALL.join(', ')} (got #{level.inspect})")
    end
  end
end
