# frozen_string_literal: true

require "monitor"

module LogIngestion
  # The client behind LogIngestionClient: holds the configuration and this process's
  # delivery (native engine, or the in-memory recorder in test mode), and owns the
  # delivery's lifecycle -- start at configure, a fresh one after fork, restart after
  # a setting changes, flush at exit. Log calls never wait on the network and never
  # raise because delivery failed; only bad arguments raise.
  class Client
    DEFAULT_FLUSH_TIMEOUT = 30.0
    DEFAULT_SEND_TIMEOUT = 30.0

    attr_reader :configuration

    def initialize
      @lock = Monitor.new
      @configuration = Configuration.new
      @configured = false
      @delivery = nil
      @pid = Process.pid
      @warned_unconfigured = false
      @at_exit_installed = false
      @recorder = TestDelivery::Recorder.new
    end

    # Replaces the configuration (already validated) and starts its delivery;
    # the previous delivery is flushed and shut down first.
    def configure(configuration)
      configuration.validate!
      @lock.synchronize do
        retire_delivery
        @configuration = configuration
        @configured = true
        @warned_unconfigured = false
        @delivery = start_delivery if configuration.deliverable?
      end
      self
    end

    # Changes one setting; the delivery restarts with it on the next call.
    def update_setting(name, value)
      @lock.synchronize do
        changed = @configuration.dup
        changed.public_send(:"#{name}=", value)
        changed.validate!
        @configuration = changed
        @stale = true
      end
      value
    end

    def configured?
      @configured && @configuration.deliverable?
    end

    def log(level, message, metadata = nil)
      level = Levels.normalize(level)
      delivery = current_delivery or return false
      delivery.enqueue(level, message.is_a?(String) ? message : message.to_s, metadata)
    end

    def send_log(entry, timeout: DEFAULT_SEND_TIMEOUT)
      delivery = current_delivery or return nil
      delivery.send_log(prepare_entry(entry), timeout)
    end

    def flush(timeout: DEFAULT_FLUSH_TIMEOUT)
      delivery = current_delivery or return true
      delivery.flush(timeout)
    end

    def shutdown(timeout: @configuration.shutdown_timeout)
      @lock.synchronize do
        delivery = @delivery
        return { delivered: 0, undelivered: 0 } unless delivery && delivery.pid == Process.pid

        @delivery = nil
        delivery.shutdown(timeout)
      end
    end

    def stats
      delivery = @delivery
      return NativeDelivery::EMPTY_STATS.dup unless delivery && delivery.pid == Process.pid

      delivery.stats
    end

    def recorded_entries
      @recorder.entries
    end

    def clear_recorded_entries
      @recorder.clear
    end

    # Called by at_exit: delivers what is queued within shutdown_timeout.
    # A log call made later (by another at_exit handler) starts a new delivery and
    # installs a new handler, which Ruby still runs.
    def shutdown_at_exit
      @at_exit_installed = false
      shutdown if @delivery && @pid == Process.pid
    rescue StandardError => e
      LogIngestion.logger.error("log_ingestion: shutdown at exit failed: #{e.class}: #{e.message}")
    end

    private

    # The delivery to use now, or nil (after one warning) when not configured.
    def current_delivery
      delivery = @delivery
      return delivery if delivery && !@stale && @pid == Process.pid

      @lock.synchronize { refresh_delivery }
    end

    def refresh_delivery
      forget_parent_delivery if @pid != Process.pid
      configure_from_environment unless @configured
      if @stale
        @stale = false
        retire_delivery
      end
      @delivery ||= start_delivery if @configuration.deliverable?
      @delivery || warn_unconfigured
    end

    # In a forked child: the parent's delivery belongs to the parent. Its engine is
    # dropped from our hands without being stopped (the binding leaks it rather than
    # join threads that do not exist in this process); the child starts its own.
    def forget_parent_delivery
      @pid = Process.pid
      @delivery = nil
    end

    def configure_from_environment
      @configured = true
      configuration = Configuration.new.load_environment
      configuration.validate!
      @configuration = configuration
    rescue ConfigurationError => e
      LogIngestion.logger.warn("#{e.message}; log calls are ignored")
    end

    def start_delivery
      @pid = Process.pid
      return TestDelivery.new(@configuration, @recorder) if @configuration.test_mode

      delivery = NativeDelivery.new(@configuration)
      install_at_exit
      delivery
    end

    def retire_delivery
      delivery = @delivery
      @delivery = nil
      delivery.shutdown(@configuration.shutdown_timeout) if delivery && delivery.pid == Process.pid
    end

    def install_at_exit
      return if @at_exit_installed

      @at_exit_installed = true
      client = self
      at_exit { client.shutdown_at_exit }
    end

    def warn_unconfigured
      unless @warned_unconfigured
        @warned_unconfigured = true
        LogIngestion.logger.warn(
          "log_ingestion: not configured (set LOG_INGESTION_URL and LOG_INGESTION_API_KEY, or call " \
          "LogIngestionClient.configure); log calls are ignored"
        )
      end
      nil
    end

    def prepare_entry(entry)
      entry = entry.to_h { |key, value| [key.to_sym, value] }
      timestamp = entry[:timestamp]
      timestamp = timestamp.getutc.strftime("%Y-%m-%dT%H:%M:%S.%6NZ") if timestamp.is_a?(Time)
      {
        timestamp: timestamp.nil? ? Time.now.utc.strftime("%Y-%m-%dT%H:%M:%S.%6NZ") : timestamp.to_s,
        service: (entry[:service] || @configuration.service).to_s,
        level: Levels.normalize(entry[:level] || "INFO"),
        message: entry[:message].to_s,
        metadata: entry[:metadata]
      }
    end
  end
end
