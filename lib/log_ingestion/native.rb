# frozen_string_literal: true

module LogIngestion
  # Loads the native extension (lib/log_ingestion/log_ingestion.so) on first use, so
  # that requiring the gem and test mode work without it. Owns loading only.
  module Native
    class << self
      # True when the extension is loaded (loading it now if needed).
      def available?
        load!
        true
      rescue LogIngestion::Error
        false
      end

      # Loads the extension or raises LogIngestion::Error saying how to build it.
      def load!
        return if defined?(LogIngestion::Native::Engine)

        require "log_ingestion/log_ingestion"
      rescue LoadError => e
        raise LogIngestion::Error,
              "log_ingestion: the native extension is not built (#{e.message}); run `rake compile` " \
              "in the repository, or reinstall the gem"
      end
    end
  end
end
