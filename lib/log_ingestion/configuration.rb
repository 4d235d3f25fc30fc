# frozen_string_literal: true

require "uri"

module LogIngestion
  # The client's settings: defaults, loading from the environment and Rails
  # credentials, validation with clear errors, and the hash handed to the native
  # engine. The one home of the settings' defaults and rules: the engine has neither
  # (it trusts what to_engine_hash gives it, every key present), so a new setting or
  # bound is added here. Owns values only; it never starts threads or touches the network.
  class Configuration
    # The smallest positive duration setting (seconds).
    MIN_POSITIVE_SECONDS = 0.001
    DEFAULTS = {
      api_url: nil,
      api_key: nil,
      service: "rails-app",
      enable_batching: true,
      batch_size: 512,
      batch_interval: 1.0,
      max_batch_bytes: 1024 * 1024,
      max_retries: 5,
      # Seconds a batch is retried while the server is unavailable (connection refused,
      # 429, 502-504): rides out a restart, a deploy or a failover. The queue keeps its
      # byte bound meanwhile, and exit still waits only shutdown_timeout.
      max_retry_elapsed: 300.0,
      retry_delay: 0.5,
      max_retry_delay: 30.0,
      max_queue_bytes: 16 * 1024 * 1024,
      drop_policy: :newest,
      gzip: true,
      open_timeout: 5.0,
      read_timeout: 10.0,
      shutdown_timeout: 5.0,
      # Directory where what the service cannot take at exit is kept for the next
      # process (nil: Configuration.default_spool_dir, which the Railtie sets to
      # Rails.root/tmp/log_ingestion/spool; false or none: no spool).
      spool_dir: nil,
      # Bound of the spool directory's files together.
      max_spool_bytes: 64 * 1024 * 1024,
      on_error: nil,
      metadata_filter: nil,
      test_mode: false
    }.freeze

    DROP_POLICIES = %i[newest oldest].freeze
    ENV_VARIABLES = { api_url: "LOG_INGESTION_URL", api_key: "LOG_INGESTION_API_KEY",
                      service: "LOG_INGESTION_SERVICE" }.freeze
    CREDENTIAL_KEYS = { api_url: :url, api_key: :api_key, service: :service }.freeze

    attr_accessor(*DEFAULTS.keys)

    class << self
      # The spool directory of every configuration whose spool_dir is nil (the Railtie
      # sets Rails.root/tmp/log_ingestion/spool). Outside Rails there is none: no spool.
      attr_accessor :default_spool_dir
    end

    def initialize(**settings)
      DEFAULTS.each { |name, value| public_send(:"#{name}=", value) }
      settings.each { |name, value| public_send(:"#{name}=", value) }
    end

    # Fills api_url, api_key and service from ENV, then from Rails credentials
    # (`log_ingestion: url/api_key/service`) when Rails is loaded. Returns self.
    def load_environment(env = ENV)
      ENV_VARIABLES.each do |name, variable|
        value = env[variable]
        value = credential(CREDENTIAL_KEYS.fetch(name)) if blank?(value)
        public_send(:"#{name}=", value) unless blank?(value)
      end
      self
    end

    # True when there is somewhere to send to (or test mode records instead).
    def deliverable?
      test_mode || (!blank?(api_url) && !blank?(api_key))
    end

    # Raises ConfigurationError naming the first bad setting; returns self.
    def validate!
      validate_url
      check(:service, service.is_a?(String) && !service.strip.empty? && service.bytesize <= 255,
            "a non-empty String of at most 255 bytes")
      check(:api_key, api_key.nil? || api_key.is_a?(String), "a String")
      %i[enable_batching gzip test_mode].each { |name| check(name, boolean?(public_send(name)), "true or false") }
      check_integer(:batch_size, 1..10_000)
      check_integer(:max_batch_bytes, 1024..(64 * 1024 * 1024))
      check_integer(:max_retries, 0..100)
      check_integer(:max_queue_bytes, 1024..(1024 * 1024 * 1024 * 16))
      check_integer(:max_spool_bytes, 0..(1024 * 1024 * 1024 * 64))
      check(:spool_dir, spool_dir_valid?, "nil, false or a directory path (String or Pathname)")
      check_seconds(:batch_interval, positive: true)
      check_seconds(:retry_delay, positive: true)
      check_seconds(:max_retry_delay, positive: true)
      check_seconds(:max_retry_elapsed, positive: true)
      check_seconds(:open_timeout, positive: true)
      check_seconds(:read_timeout, positive: true)
      check_seconds(:shutdown_timeout, positive: false)
      check(:max_retry_delay, max_retry_delay >= retry_delay, "at least retry_delay (#{retry_delay})")
      check(:drop_policy, DROP_POLICIES.include?(drop_policy_name), "one of #{DROP_POLICIES.join(', ')}")
      check(:on_error, on_error.nil? || on_error.respond_to?(:call), "nil or an object responding to #call")
      check(:metadata_filter, metadata_filter.nil? || metadata_filter.respond_to?(:call),
            "nil or an object responding to #call(hash) -> hash")
      self
    end

    # The settings the native engine takes, every one of them (durations in seconds as
    # Floats); call after validate!, whose rules the engine does not repeat.
    def to_engine_hash
      {
        "api_url" => api_url.to_s.chomp("/"), "api_key" => api_key.to_s, "service" => service,
        "enable_batching" => enable_batching, "batch_size" => batch_size,
        "batch_interval" => batch_interval.to_f, "max_batch_bytes" => max_batch_bytes,
        "max_retries" => max_retries, "retry_delay" => retry_delay.to_f,
        "max_retry_delay" => max_retry_delay.to_f, "max_retry_elapsed" => max_retry_elapsed.to_f,
        "max_queue_bytes" => max_queue_bytes,
        "drop_policy" => drop_policy_name.to_s, "gzip" => gzip,
        "open_timeout" => open_timeout.to_f, "read_timeout" => read_timeout.to_f,
        "user_agent" => "log_ingestion-ruby/#{LogIngestion::VERSION} (ruby #{RUBY_VERSION})",
        "spool_dir" => effective_spool_dir, "max_spool_bytes" => max_spool_bytes
      }
    end

    # The spool directory in use (an absolute path), or nil when there is no spool.
    def effective_spool_dir
      dir = spool_dir.nil? ? self.class.default_spool_dir : spool_dir
      return nil if dir.nil? || dir == false

      File.expand_path(dir.respond_to?(:to_path) ? dir.to_path : dir.to_s)
    end

    def to_h
      DEFAULTS.keys.to_h { |name| [name, public_send(name)] }
    end

    def initialize_copy(source)
      super
      DEFAULTS.each_key { |name| instance_variable_set(:"@#{name}", source.public_send(name)) }
    end

    private

    def drop_policy_name
      drop_policy.respond_to?(:to_sym) ? drop_policy.to_sym.downcase : drop_policy
    end

    def credential(key)
      return nil unless defined?(::Rails) && ::Rails.respond_to?(:application) && ::Rails.application

      credentials = ::Rails.application.credentials
      credentials.respond_to?(:dig) ? credentials.dig(:log_ingestion, key) : nil
    rescue StandardError
      nil
    end

    def validate_url
      return if api_url.nil?

      check(:api_url, http_url?(api_url.to_s), "an http:// or https:// URL with a host")
    end

    def http_url?(text)
      uri = URI.parse(text)
      uri.is_a?(URI::HTTP) && !blank?(uri.host)
    rescue URI::Error
      false
    end

    def spool_dir_valid?
      return true if spool_dir.nil? || spool_dir == false

      path = spool_dir.respond_to?(:to_path) ? spool_dir.to_path : spool_dir
      path.is_a?(String) && !path.strip.empty? && !path.include?("\0")
    end

    def check_integer(name, range)
      value = public_send(name)
      check(name, value.is_a?(Integer) && range.cover?(value), "an Integer in #{range}")
    end

    # A positive duration is at least a millisecond: the engine trusts these values, and
    # one that rounds to nothing would make its delivery loop spin or every request time out.
    def check_seconds(name, positive:)
      value = public_send(name)
      valid = value.is_a?(Numeric) && value.real? && value.finite? && value <= 86_400 &&
              value >= (positive ? MIN_POSITIVE_SECONDS : 0)
      check(name, valid, positive ? "a number of seconds >= #{MIN_POSITIVE_SECONDS}" : "a number of seconds >= 0")
    end

    def check(name, condition, expectation)
      return if condition

      raise ConfigurationError, "log_ingestion: #{name} must be #{expectation} (got #{public_send(name).inspect})"
    end

    def boolean?(value)
      [true, false].include?(value)
    end

    def blank?(value)
      value.nil? || (value.respond_to?(:empty?) && value.to_s.strip.empty?)
    end
  end
end
