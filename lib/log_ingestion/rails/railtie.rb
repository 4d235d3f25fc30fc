# frozen_string_literal: true

require "rails/railtie"
require "log_ingestion/rails/parameter_filter"
require "log_ingestion/rails/exception_details"
require "log_ingestion/rails/request_logging"
require "log_ingestion/rails/controller_logging"
require "log_ingestion/rails/job_logging"
require "log_ingestion/rails/subscribers"
require "log_ingestion/rails/logger"
require "log_ingestion/context"
require "log_ingestion/rails/request_context"
require "log_ingestion/rails/request_entries"
require "log_ingestion/rails/error_subscriber"
require "log_ingestion/rails/request_lines"
require "log_ingestion/rails/job_entries"
require "log_ingestion/rails/exception_entry"
require "log_ingestion/rails/job_context"
require "log_ingestion/rails/stats_endpoint"

module LogIngestion
  # Wires the gem into a Rails application from `config.log_ingestion.*`:
  #
  #   config.log_ingestion.api_url          = "https://logs.example.com" # > ENV > credentials
  #   config.log_ingestion.api_key          = ...                        # > ENV > credentials
  #   config.log_ingestion.service          = "shop"                     # > ENV > credentials
  #   config.log_ingestion.test_mode        = Rails.env.test?            # record in memory
  #   config.log_ingestion.request_entries  = true                       # one entry per request (RequestEntries)
  #   config.log_ingestion.rails_request_lines = :replace                # one line per request in the Rails
  #                                                                      # log (RequestLines); :keep: Rails' own
  #   config.log_ingestion.job_entries      = true                       # one entry per job run (JobEntries)
  #   config.log_ingestion.broadcast_logger = true                       # Rails.logger -> service too
  #   config.log_ingestion.logger_level     = :warn                      # lowest level forwarded
  #   config.log_ingestion.request_logging  = false                      # RequestLogging's HTTP Request/Response
  #   config.log_ingestion.subscribers      = false                      # or %i[process_action sql enqueue perform]
  #   config.log_ingestion.slow_query_ms    = 100
  #   config.log_ingestion.startup_entry    = true                       # "Rails application started"
  #                                                                      # (never from rake/runner/console/generators)
  #   config.log_ingestion.job_context      = true                       # jobs carry job_id/job_class/parent ids
  #   config.log_ingestion.filter_parameters = true                      # or false, or a list
  #   config.log_ingestion.metadata_filter  = nil                        # default: that filter on all
  #                                                                      # metadata; false: off; or #call(hash)
  #   config.log_ingestion.spool_dir        = nil                        # default: tmp/log_ingestion/spool
  #   config.log_ingestion.enabled          = false                      # do nothing at all
  #   # any other client setting (batch_size, gzip, on_error, ...) is passed to LogIngestionClient.
  #
  # Owns: reading those settings, configuring LogIngestionClient once after
  # initialisation, inserting the middlewares (RequestContext right after
  # ActionDispatch::RequestId; RequestLogging when asked), registering RequestContext's
  # DebugExceptions interceptor, giving jobs their JobEntries and Context (JobContext),
  # subscribing, the startup entry, the rake tasks and the generator. The flush at
  # shutdown is the client's own at_exit handler (per process, so each Puma worker
  # delivers its queue when it exits). When nothing says where to send (no URL/key
  # anywhere, not test mode) it warns once and installs nothing. It never patches a
  # Rails class and never configures the client twice.
  class Railtie < ::Rails::Railtie
    # Settings of this Railtie (everything else under config.log_ingestion goes to the client).
    RAILS_SETTINGS = %i[enabled startup_entry request_entries rails_request_lines job_entries request_logging
                        request_logging_skip_paths subscribers slow_query_ms broadcast_logger logger_level
                        job_context filter_parameters].freeze
    # The lowest Rails.logger level forwarded when broadcast_logger is on: what the app
    # warns about. The Rails log's INFO lines (the request's one line, Performing,
    # Enqueued) stay in the log file; the request and job entries say it once.
    DEFAULT_LOGGER_LEVEL = :warn
    # `bin/rails` commands that run once and exit: no "Rails application started" from them.
    ONE_OFF_COMMANDS = %i[RunnerCommand ConsoleCommand GenerateCommand DestroyCommand RakeCommand
                          DbconsoleCommand].freeze

    config.log_ingestion = ActiveSupport::OrderedOptions.new

    class << self
      # Configures LogIngestionClient from +options+ (config.log_ingestion):
      # explicit settings win over ENV (LOG_INGESTION_*), which win over credentials.
      # Returns true when the client can deliver (or records, in test mode).
      # A client the app already configured itself (LogIngestionClient.configure in
      # an initializer) is kept as it is when config.log_ingestion sets nothing for it.
      #
      # Every client that sets no metadata_filter of its own -- the app's own
      # LogIngestionClient.configure included, whenever it runs -- filters the
      # metadata of every entry with default_metadata_filter(options.metadata_filter).
      def configure_client(options)
        LogIngestion::Client.default_metadata_filter = default_metadata_filter(options.metadata_filter)
        settings = client_settings(options)
        return true if settings.empty? && ::LogIngestionClient.configured?

        ::LogIngestionClient.configure do |client_config|
          settings.each { |name, value| client_config.public_send(:"#{name}=", value) }
        end
        ::LogIngestionClient.configured?
      end

      # The client settings present in +options+, in the client's own names
      # (metadata_filter is not one: it becomes the default of every client).
      def client_settings(options)
        known = LogIngestion::Configuration::DEFAULTS.keys
        options.to_h.each_with_object({}) do |(name, value), settings|
          name = name.to_sym
          next if name == :metadata_filter

          next if RAILS_SETTINGS.include?(name) || value.nil?
          raise ConfigurationError, "config.log_ingestion.#{name} is not a setting" unless known.include?(name)

          settings[name] = value
        end
      end

      # The ParameterFilter the glue uses, from config.log_ingestion.filter_parameters.
      def parameter_filter(app, setting)
        case setting
        when false then ParameterFilter.new([])
        when nil, true then ParameterFilter.new(Array(app.config.filter_parameters), rails: true)
        else ParameterFilter.new(Array(setting))
        end
      end

      # The metadata_filter of clients that set none, from config.log_ingestion.metadata_filter:
      # false: none; an object with #call: it; nil: the glue's ParameterFilter (nil when
      # it filters nothing).
      def default_metadata_filter(setting = nil)
        return nil if setting == false
        return ParameterFilter.current.then { |filter| filter.empty? ? nil : filter } if setting.nil?
        return setting if setting.respond_to?(:call)

        raise ConfigurationError,
              "config.log_ingestion.metadata_filter must be false or respond to #call, not #{setting.class}"
      end

      # Subscriber names from config.log_ingestion.subscribers (true: all; nil, false: none).
      def subscriber_names(setting)
        case setting
        when true then Subscribers::ALL
        when nil, false then []
        else Array(setting).map(&:to_sym)
        end
      end

      # Warns (once per process) that the integration is inactive.
      def warn_not_configured(app)
        return if @warned_not_configured

        @warned_not_configured = true
        message = "log_ingestion: not configured -- no api_url/api_key in config.log_ingestion, " \
                  "ENV (LOG_INGESTION_URL, LOG_INGESTION_API_KEY) or credentials (log_ingestion: url, api_key); " \
                  "the Rails integration is inactive and entries are discarded"
        LogIngestion.logger.warn(message)
        Logger.without_forwarding { ::Rails.logger&.warn(message) }
      end

      # Runs once after the application has initialised.
      def start(app)
        options = app.config.log_ingestion
        return if options.enabled == false

        ParameterFilter.current = parameter_filter(app, options.filter_parameters)
        unless configure_client(options)
          warn_not_configured(app)
          return
        end

        options.request_entries == false ? RequestEntries.unsubscribe : RequestEntries.subscribe
        ErrorSubscriber.subscribe unless options.request_entries == false
        replace_request_lines?(options) ? RequestLines.replace : RequestLines.keep
        Subscribers.subscribe(only: subscriber_names(options.subscribers),
                              slow_query_ms: options.slow_query_ms || Subscribers::DEFAULT_SLOW_QUERY_MS)
        if options.broadcast_logger && ::Rails.logger
          ::Rails.logger = Logger.broadcast(::Rails.logger, level: options.logger_level || DEFAULT_LOGGER_LEVEL)
        end
        log_startup if options.startup_entry != false && !one_off_command?
      end

      # True when the request's one line replaces Rails' own request lines: the
      # request entries are on and rails_request_lines is not :keep.
      def replace_request_lines?(options)
        options.enabled != false && options.request_entries != false &&
          RequestLines.setting(options.rails_request_lines) == :replace
      end

      # True in a process that runs a command rather than serving the app: a rake
      # task (`bin/rails logs:test`, `db:migrate`), `rails runner`, `rails console`
      # or a generator. Those do not log "Rails application started".
      #
      # `bin/rails` loads only the command it runs (Rails::Command::ServerCommand for
      # `rails server`), so a loaded one-off command class says what this process is;
      # plain `rake` is told by its top-level tasks. (Not `defined?(Rails::Generators)`:
      # an app or gem may load the generators while serving.)
      def one_off_command?
        commands = defined?(::Rails::Command) ? ::Rails::Command : nil
        return true if commands && ONE_OFF_COMMANDS.any? { |name| commands.const_defined?(name, false) }

        defined?(::Rake) && ::Rake.respond_to?(:application) && !::Rake.application.top_level_tasks.empty?
      rescue StandardError
        false
      end

      private

      def log_startup
        ::LogIngestionClient.info("Rails application started", {
                                    environment: ::Rails.env.to_s,
                                    version: ::Rails.version,
                                    ruby_version: RUBY_VERSION,
                                    pid: Process.pid
                                  })
      end
    end

    # The app's boot has begun: log calls start no Ruby thread until it ends
    # (LogIngestion.booting?, cleared after LogIngestion::Railtie.start).
    initializer "log_ingestion.booting", before: :initialize_logger do
      LogIngestion.booting = true
    end

    # The spool's default directory, the app's tmp/ (before config/initializers, so an
    # engine an initializer starts has it too; config.log_ingestion.spool_dir wins).
    initializer "log_ingestion.spool_dir", before: :load_config_initializers do |app|
      LogIngestion::Configuration.default_spool_dir = File.join(app.paths["tmp"].first, "log_ingestion", "spool")
    end

    # After config/initializers so settings made there count; before the
    # middleware stack is built (Finisher).
    initializer "log_ingestion.request_logging", after: :load_config_initializers do |app|
      options = app.config.log_ingestion
      if options.enabled != false && defined?(::ActionDispatch::RequestId)
        app.config.middleware.insert_after(::ActionDispatch::RequestId, RequestContext)
      end
      # Rails::Rack::Logger without its Started line (written only while RequestLines replaces Rails' lines).
      if LogIngestion::Railtie.replace_request_lines?(options)
        app.config.middleware.swap(::Rails::Rack::Logger, RequestLines::RackLogger, app.config.log_tags)
      end
      if options.request_logging && options.enabled != false
        skip_paths = options.request_logging_skip_paths || RequestLogging::DEFAULT_SKIP_PATHS
        if defined?(::ActionDispatch::DebugExceptions)
          # Inside DebugExceptions/ShowExceptions: sees the exception before it becomes an error page.
          app.config.middleware.insert_after(::ActionDispatch::DebugExceptions, RequestLogging,
                                             { skip_paths: skip_paths })
        else
          app.config.middleware.use(RequestLogging, { skip_paths: skip_paths })
        end
      end
    end

    # JobEntries first: JobContext, included after it, runs outside it, so the job
    # entry is sent in the job's Context.
    initializer "log_ingestion.job_context", after: :load_config_initializers do |app|
      options = app.config.log_ingestion
      if options.enabled != false
        entries = options.job_entries != false
        context = options.job_context != false
        ActiveSupport.on_load(:active_job) do
          include LogIngestion::JobEntries if entries
          include LogIngestion::JobContext if context
        end
      end
    end

    # Rails reports an exception (DebugExceptions' FATAL lines) before the middleware
    # outside it sees it: the interceptor notes it in the request's Context first.
    initializer "log_ingestion.exception_interceptor", after: :load_config_initializers do |app|
      options = app.config.log_ingestion
      if options.enabled != false && options.request_entries != false &&
         defined?(::ActionDispatch::DebugExceptions) &&
         ::ActionDispatch::DebugExceptions.respond_to?(:register_interceptor) &&
         !::ActionDispatch::DebugExceptions.interceptors.include?(RequestContext.method(:intercept))
        ::ActionDispatch::DebugExceptions.register_interceptor(RequestContext.method(:intercept))
      end
    end

    config.after_initialize do |app|
      LogIngestion::Railtie.start(app)
    ensure
      LogIngestion.booting = false
    end

    rake_tasks do
      load File.expand_path("../../tasks/log_ingestion.rake", __dir__)
    end

    generators do
      require "generators/log_ingestion/install/install_generator"
    end
  end
end
