# frozen_string_literal: true

module LogIngestion
  # Loads the native extension on first use, so that requiring the gem and test mode
  # work without it. Owns choosing and loading the library only; never builds it.
  #
  # Where the library can be, in order:
  #   log_ingestion/<ruby major.minor>/log_ingestion.so  prebuilt, in the platform gem
  #                                                      (one directory per Ruby ABI)
  #   log_ingestion/log_ingestion.so                     compiled by cargo (source gem,
  #                                                      `rake compile` in a checkout)
  module Native
    # What a failure to load one candidate may add to the message (a dlopen error such
    # as a missing GLIBC_ version is short; anything longer is cut).
    MAX_REASON_CHARS = 300

    class << self
      # True when the extension is loaded (loading it now if needed).
      def available?
        load!
        true
      rescue NativeLoadError
        false
      end

      # Loads the extension or raises NativeLoadError (a LoadError) naming the platform,
      # the Ruby version, what was tried and how to build from source.
      def load!
        return if defined?(LogIngestion::Native::Engine)

        failures = candidate_features.map do |feature|
          require feature
          return nil
        rescue LoadError => e
          "#{feature} (#{e.message[0, MAX_REASON_CHARS]})"
        end
        raise NativeLoadError, missing_message(failures)
      end

      # The features to require, prebuilt for this Ruby first.
      def candidate_features
        ["log_ingestion/#{ruby_abi}/log_ingestion", "log_ingestion/log_ingestion"]
      end

      # The directory of prebuilt libraries for Ruby +version+: "3.1" for 3.1.x, since an
      # extension built for one minor version loads only there. The platform gem's
      # packaging (the Rakefile's GemPackages) names its directories with this too.
      def ruby_abi(version = RUBY_VERSION)
        version[/\A\d+\.\d+/]
      end

      private

      def missing_message(failures)
        "log_ingestion #{VERSION}: no native extension for #{RUBY_PLATFORM} and Ruby #{RUBY_VERSION} " \
          "(tried #{failures.join('; ')}). Prebuilt gems cover x86_64-linux and aarch64-linux (glibc >= 2.17) on " \
          "the Ruby versions they name; elsewhere the gem builds from source with cargo (Rust >= 1.80): " \
          "`gem install log_ingestion --platform ruby`, or with Bundler `force_ruby_platform: true` on the gem " \
          "(or `bundle config set force_ruby_platform true`); in a checkout or a `path:` source, run `rake compile`"
      end
    end
  end
end
