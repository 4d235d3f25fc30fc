# frozen_string_literal: true

require "monitor"
require "log_ingestion/failsafe"
require "log_ingestion/fork_hook"

module LogIngestion
  # The client behind LogIngestionClient: holds the configuration and this process's
  # delivery (native engine, or the in-memory recorder in test mode), and owns the
  # delivery's lifecycle -- start at configure, a fresh one after fork (told by
  # LogIngestion::ForkHook), restart after a setting changes, flush at exit. Log calls
  # never wait on the network and never raise because delivery failed; only bad
  # arguments raise. The metadata_filter setting runs here, on the caller's thread,
  # before an entry is converted.
  #
  # A delivery started lazily by a log call (first call, after fork, after a setting
  # changed) that fails to start (native extension missing, engine refused) does not
  # raise into that call: the failure is reported once through on_error
  # (report_failure), the call returns false/nil, and no start is tried again until
  # the client is configured again or the process forks -- so a broken setup costs a
  # log call one Hash lookup, not a failed start each time.
  #
  # Every entry gets the current request's/job's ids (LogIngestion::Context) and the
  # current OpenTelemetry span's trace context (LogIngestion::TraceContext, when the app
  # loaded opentelemetry-api) added to its metadata before the metadata_filter runs.
  class Client
    class << self
      # The metadata_filter of every client whose configuration sets none (nil). The
      # Rails glue sets it (Railtie.configure_client: config.filter_parameters by
      # default), so it survives an app's own LogIngestionClient.configure -- the
      # guide's after_initialize block builds a fresh configuration after the glue ran.
      attr_accessor :default_metadata_filter
    end

    DEFAULT_FLUSH_TIMEOUT = 30.0
    DEFAULT_SEND_TIMEOUT = 30.0
    # Settings only this class reads: changing one does not restart the delivery.
    CLIENT_ONLY_SETTINGS = %i[metadata_filter].freeze
    # The metadata key an entry carries instead of its metadata when metadata_filter raised.
    METADATA_FILTER_ERROR = "metadata_filter_error"
    # Longest message of a report made by report_failure (error messages can quote input).
    FAILURE_MESSAGE_LIMIT = 1000

    attr_reader :configuration

    def initialize
      @lock = Monitor.new
      @configuration = Configuration.new
      @configured = false
      @delivery = nil
      @pid = Process.pid
      @warned_unconfigured = false
      @at_exit_installed = false
      @retiring = []
      @stale = false
      @recorder = TestDelivery::Recorder.new
      @filter_failure_reported = false
      @failures_reported = {}
      @entries_lost_to_failures = 0
      @start_failure = nil
      @unreported_start_failure = nil
      ForkHook.register(self)
    end

    # Replaces the configuration and starts its delivery; the previous delivery is
    # then flushed and shut down (within its shutdown_timeout) by this call, while
    # other threads already log to the new one.
    def configure(configuration)
      configuration.validate!
      previous = timeout = nil
      @lock.synchronize do
        previous = take_own_delivery
        timeout = @configuration.shutdown_timeout
        @configuration = configuration
        @configured = true
        @stale = false
        @warned_unconfigured = false
        @filter_failure_reported = false
        @failures_reported = {}
        @start_failure = nil
        @delivery = start_delivery if configuration.deliverable?
      end
      self
    ensure
      # Also when the new delivery failed to start (a NativeLoadError at boot): the
      # previous one still delivers what it holds.
      previous&.shutdown(timeout)
    end

    # Changes one setting (on top of the environment's when nothing was configured
    # yet); the delivery restarts with it on the next call.
    def update_setting(name, value)
      @lock.synchronize do
        configure_from_environment unless @configured
        changed = @configuration.dup
        changed.public_send(:"#{name}=", value)
        changed.validate!
        @configuration = changed
        @filter_failure_reported = false if name.to_sym == :metadata_filter
        @failures_reported = {}
        @start_failure = nil
        @stale = true unless CLIENT_ONLY_SETTINGS.include?(name.to_sym)
      end
      value
    end

    def configured?
      @configured && @configuration.deliverable?
    end

    # Enqueues one entry: true, or false when it was not taken (not configured, queue
    # full, or a failure of the gem, reported through on_error). Raises only
    # ArgumentError for an unknown level.
    def log(level, message, metadata = nil)
      log_canonical(Levels.normalize(level), message, metadata)
    end

    # #log for a +level+ already canonical (one of Levels::ALL, as it is): what
    # LogIngestionClient's level methods call, sparing each log call the level lookup
    # and a Ruby method call (each is a visible share of a log call's cost). A level
    # that is not canonical is not taken (the failure is reported through on_error, as
    # any failure of an enqueue), never raised.
    def log_canonical(level, message, metadata = nil)
      delivery = @delivery
      # current_delivery's checks, inline, but for the process check (ForkHook makes it
      # needless here): the common case costs no extra call (each Ruby call is a
      # visible share of a log call's ~2 µs).
      if delivery.nil? || @stale
        delivery = current_delivery or return not_taken
      end
      metadata = TraceContext.merge_into(Context.merge_into(metadata))
      # Skipped without a filter (the client's or the default one): a log call's Ruby
      # layers cost it more than the native conversion, so each call saved here shows.
      filter = @configuration.metadata_filter || Client.default_metadata_filter
      metadata = filter_metadata(metadata, filter) if filter
      message = message.to_s unless message.is_a?(String)
      taken = delivery.enqueue(level, message, metadata)
      # nil: the delivery is the parent's, in a child forked without Process._fork
      # (Process.daemon; ForkHook saw every other fork); the child's own delivery takes it.
      taken.nil? ? enqueue_in_forked_child(level, message, metadata) : taken
    rescue StandardError => e
      raise if Failsafe.interrupt?(e)

      report_failure(:enqueue, e)
      false
    end

    # Sends one entry now (see LogIngestionClient.send_log). Its defaults (timestamp,
    # service, level, message) are filled by the native extension, as a log call's are.
    # retries: false makes one attempt, whose failure is the answer.
    def send_log(entry, timeout: DEFAULT_SEND_TIMEOUT, retries: true)
      delivery = current_delivery or return nil
      entry = entry.to_h { |key, value| [key.to_sym, value] }
      entry[:metadata] = filter_metadata(TraceContext.merge_into(Context.merge_into(entry[:metadata])))
      delivery.send_log(entry, timeout, retries: retries)
    rescue LogIngestion::Error => e
      report_failure(:send_log, e)
      nil
    end

    def flush(timeout: DEFAULT_FLUSH_TIMEOUT)
      delivery = current_delivery or return true
      delivery.flush(timeout)
    rescue LogIngestion::Error => e
      report_failure(:flush, e, entries_lost: 0)
      false
    end

    # Flushes within +timeout+ and stops this process's delivery; a later log call
    # starts a new one. Other threads never wait for it.
    def shutdown(timeout: @configuration.shutdown_timeout)
      delivery = @lock.synchronize { take_own_delivery }
      return { delivered: 0, undelivered: 0, spooled: 0 } unless delivery

      delivery.shutdown(timeout)
    end

    # The delivery's counters; entries lost to failures of the gem itself (see
    # report_failure) are added to dropped_internal, and last_error/last_error_at are
    # the later of the delivery's last error and the gem's own last failure.
    def stats
      delivery = @delivery
      stats = delivery && delivery.pid == Process.pid ? delivery.stats : EngineDelivery.idle_stats
      lost = @entries_lost_to_failures
      return stats if lost.zero?

      return stats.merge(dropped_internal: stats.fetch(:dropped_internal, 0) + lost) if later_error?(stats)

      stats.merge(dropped_internal: stats.fetch(:dropped_internal, 0) + lost,
                  last_error: @last_failure, last_error_at: @last_failure_at)
    end

    # A failure of the gem's own code on a caller's thread (+source+ names where: a lazy
    # engine start, an enqueue, the middleware, a subscriber, the Logger), which cost
    # the entry being made: counted in stats (dropped_internal) and reported through
    # on_error -- once per source until the client is configured again (a setting
    # changed, on_error included), so a failure on every request does not flood the
    # handler. The message is capped at FAILURE_MESSAGE_LIMIT bytes. Never raises, never
    # blocks on the handler while a delivery's reporter thread can call it instead.
    def report_failure(source, error, entries_lost: 1)
      message = "log_ingestion: #{source} failed: #{error.class}: #{error.message}"
      message = "#{message.byteslice(0, FAILURE_MESSAGE_LIMIT).scrub('')}..." if message.bytesize > FAILURE_MESSAGE_LIMIT
      first = @lock.synchronize do
        @entries_lost_to_failures += entries_lost
        @last_failure = message
        @last_failure_at = Time.now.utc
        !@failures_reported.key?(source) && (@failures_reported[source] = true)
      end
      return unless first

      report = { kind: "internal", message: message, entries_lost: entries_lost }
      delivery = @delivery
      if delivery.respond_to?(:report) && delivery.pid == Process.pid
        delivery.report(report)
      else
        ErrorReporter.handle(@configuration.on_error, report)
      end
      nil
    rescue StandardError
      nil
    end

    # In a forked child (called by LogIngestion::ForkHook): the delivery, and the threads
    # retiring earlier ones, belong to the parent; this process's next call starts its own.
    def forked
      forget_parent_delivery
      @retiring = []
      nil
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
      finish_retiring
    rescue StandardError => e
      LogIngestion.logger.error("log_ingestion: shutdown at exit failed: #{e.class}: #{e.message}")
    end

    private

    # Whether the delivery's last error (+stats+) is newer than the gem's own last failure.
    def later_error?(stats)
      error_at = stats[:last_error_at]
      stats[:last_error] && error_at && (@last_failure_at.nil? || error_at >= @last_failure_at)
    end

    # The delivery to use now, or nil (after one warning) when not configured.
    def current_delivery
      delivery = @delivery
      # A delivery exists only once the native extension is loaded; its cached
      # process id saves the getpid system call Process.pid makes on every call.
      return delivery if delivery && !@stale && @pid == Native.process_id
      return nil if @start_failure && !@stale && @pid == Process.pid

      delivery = @lock.synchronize { refresh_delivery }
      report_start_failure
      delivery
    end

    def refresh_delivery
      forget_parent_delivery if @pid != Process.pid
      configure_from_environment unless @configured
      if @stale
        @stale = false
        retire_delivery_in_background
      end
      return nil if @start_failure

      @delivery ||= start_delivery_lazily if @configuration.deliverable?
      @delivery || warn_unconfigured
    end

    # The first log call of a child forked without Process._fork (its delivery answered
    # nil): the child's own delivery, started now, takes the entry.
    def enqueue_in_forked_child(level, message, metadata)
      delivery = current_delivery or return not_taken
      delivery.enqueue(level, message, metadata) || false
    end

    # An entry no delivery took: lost to a failed start (counted), or not configured.
    def not_taken
      @lock.synchronize { @entries_lost_to_failures += 1 } if @start_failure
      false
    end

    # start_delivery on behalf of a log call: a failure is remembered (no new attempt
    # until reconfigured or forked) and reported, never raised. That includes a native
    # library that cannot be loaded (NativeLoadError is a LoadError, not a StandardError).
    def start_delivery_lazily
      start_delivery
    rescue StandardError, LoadError => e
      @start_failure = @unreported_start_failure = e
      nil
    end

    # Reports a failed start once it happened, outside the lock (on_error may be slow
    # or log through this client itself). The caller's entry is counted by not_taken.
    def report_start_failure
      error = @unreported_start_failure or return
      @unreported_start_failure = nil
      report_failure(:engine_start, error, entries_lost: 0)
    end

    # In a forked child: the parent's delivery belongs to the parent. Its engine is
    # dropped from our hands without being stopped (the binding leaks it rather than
    # join threads that do not exist in this process); the child starts its own.
    def forget_parent_delivery
      @pid = Process.pid
      @delivery = nil
      @start_failure = nil
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

      delivery = EngineDelivery.new(@configuration)
      install_at_exit
      delivery
    end

    # Removes and returns this process's delivery (nil when there is none, or when it
    # belongs to the parent of a fork).
    def take_own_delivery
      delivery = @delivery
      @delivery = nil
      delivery if delivery && delivery.pid == Process.pid
    end

    # A setting changed: the old delivery is shut down off the caller's thread (its
    # queue is flushed within shutdown_timeout) while the new one takes the calls.
    def retire_delivery_in_background
      delivery = take_own_delivery or return
      timeout = @configuration.shutdown_timeout
      @retiring.select!(&:alive?)
      @retiring << Thread.new { delivery.shutdown(timeout) }
      install_at_exit
    end

    # At exit: waits for the deliveries still being retired (each bounded by its own
    # shutdown_timeout), so their last entries are spooled and their one line is
    # written before Ruby ends the process and its threads.
    def finish_retiring
      return unless @pid == Process.pid

      @retiring.each(&:join)
      @retiring.clear
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

    # +metadata+ through +filter+ (the configured metadata_filter, else the default
    # one; Hashes only, nil and other values go on as they are). When the filter raises
    # a StandardError or answers something other than a Hash, the entry carries
    # METADATA_FILTER_ERROR instead of its metadata (so nothing unfiltered leaves), and
    # the first such failure per filter is reported through LogIngestion.logger. What
    # the host does to the thread meanwhile is not the filter's failure and passes on
    # unchanged: a throw, Thread#kill, exit, Interrupt, a timeout (Failsafe.interrupt?),
    # any exception that is not a StandardError.
    def filter_metadata(metadata, filter = @configuration.metadata_filter || Client.default_metadata_filter)
      return metadata if filter.nil? || !metadata.is_a?(Hash)

      filtered = filter.call(metadata)
      return filtered if filtered.is_a?(Hash)

      metadata_filter_failed("TypeError: metadata_filter returned #{filtered.class}, not a Hash")
    rescue StandardError => e
      raise if Failsafe.interrupt?(e)

      metadata_filter_failed("#{e.class}: #{e.message}")
    end

    def metadata_filter_failed(description)
      unless @filter_failure_reported
        @filter_failure_reported = true
        LogIngestion.logger.error("log_ingestion: metadata_filter failed (#{description}); entries carry " \
                                  "#{METADATA_FILTER_ERROR} instead of their metadata")
      end
      { METADATA_FILTER_ERROR => description }
    end
  end
end
