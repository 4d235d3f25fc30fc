# frozen_string_literal: true

# `require "log_ingestion_client"` and `require "log_ingestion"` load the same: each file
# requires the other unless it was entered through it. The class is declared first so
# that log_ingestion.rb, required from here, sees this file is already loading.
class LogIngestionClient; end # rubocop:disable Lint/EmptyClass
require "log_ingestion" unless defined?(LogIngestion::Client)

# The client of the Ruby on Rails integration guide, same interface, Rust core.
#
#   LogIngestionClient.configure                       # ENV, then Rails credentials
#   LogIngestionClient.configure { |c| c.batch_size = 100 }
#   LogIngestionClient.info("User created", { user_id: 1 })
#   LogIngestionClient.flush
#
# Log calls convert their arguments, enqueue and return at once; delivery happens on
# native threads. Delivery failures are counted in `stats` and reported through
# `on_error`, never raised. Everything here delegates to a LogIngestion::Client.
class LogIngestionClient
  LOG_LEVELS = LogIngestion::Levels::ALL

  class << self
    LogIngestion::Configuration::DEFAULTS.each_key do |name|
      define_method(name) { client.configuration.public_send(name) }
      define_method(:"#{name}=") { |value| client.update_setting(name, value) }
    end

    # With no block: settings from ENV (LOG_INGESTION_URL, LOG_INGESTION_API_KEY,
    # LOG_INGESTION_SERVICE), then Rails credentials. A block receives the
    # LogIngestion::Configuration (already filled from ENV) to change.
    def configure
      configuration = LogIngestion::Configuration.new.load_environment
      yield configuration if block_given?
      client.configure(configuration)
      nil
    end

    # Test mode: entries are recorded in memory (see recorded_entries), converted by the
    # native extension as delivery would send them; no threads, no network.
    def test_mode!
      configuration = client.configuration.dup
      configuration.test_mode = true
      client.configure(configuration)
      nil
    end

    def log(level, message, metadata = {})
      client.log(level, message, metadata)
    end

    # Plain methods rather than define_method blocks, whose calls cost more on every
    # log call; each passes its level as a frozen literal (`"INFO".freeze` is one
    # instruction, no allocation; a LOG_LEVELS[i] lookup was a constant read and a call)
    # and reads the client straight from @client once it exists (`client` is a call).
    LOG_LEVELS.each do |level|
      class_eval(<<~RUBY, __FILE__, __LINE__ + 1)
        def #{level.downcase}(message, metadata = {})                            # def info(message, metadata = {})
          (@client || client).log_canonical(#{level.dump}.freeze, message, metadata) #   (@client || client).log_canonical("INFO".freeze, ...)
        end                                                                      # end
      RUBY
    end

    # Waits (without the GVL, interruptible) until everything logged before the call
    # is delivered or has failed, or +timeout+ seconds pass. True when all was handled.
    def flush(timeout: LogIngestion::Client::DEFAULT_FLUSH_TIMEOUT)
      client.flush(timeout: timeout)
    end

    # Sends one prepared entry now, bypassing the queue (the guide's custom batchers
    # call this). Returns the server's answer as a Hash, or nil when delivery failed
    # (the failure goes to on_error). With retries: false it makes one attempt: a
    # refused connection answers at once, an unreachable host within open_timeout.
    def send_log(entry, timeout: LogIngestion::Client::DEFAULT_SEND_TIMEOUT, retries: true)
      client.send_log(entry, timeout: timeout, retries: retries)
    end

    # Delivers what is queued within +timeout+ and stops the delivery threads.
    # Returns { delivered:, undelivered:, spooled: } (spooled: kept in spool_dir for the next process).
    def shutdown(timeout: client.configuration.shutdown_timeout)
      client.shutdown(timeout: timeout)
    end

    def stats
      client.stats
    end

    def configured?
      client.configured?
    end

    def recorded_entries
      client.recorded_entries
    end

    def clear_recorded_entries
      client.clear_recorded_entries
    end

    # The LogIngestion::Client behind this class (one per process).
    def client
      @client ||= LogIngestion::Client.new
    end
  end
end
