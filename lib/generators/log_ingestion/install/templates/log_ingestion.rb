# frozen_string_literal: true

# Settings of the log_ingestion gem (structured logs to the log ingestion service).
# Where to send: the first of config.log_ingestion.*, ENV (LOG_INGESTION_URL,
# LOG_INGESTION_API_KEY, LOG_INGESTION_SERVICE) and credentials
# (`log_ingestion: { url:, api_key:, service: }`) that has a value. With none of
# them the integration warns once at boot and stays inactive.
Rails.application.configure do
  # config.log_ingestion.api_url = "https://logs.example.com"
  # config.log_ingestion.api_key = ENV.fetch("MY_LOG_KEY") # never commit a key
  # config.log_ingestion.service = "<%= Rails.application.class.module_parent_name.to_s.underscore.dasherize %>"

  # The few lines most apps need (README, "Rails"): one entry per request and per job
  # run are on by default; these add what the app itself logs through Rails.logger.
  config.log_ingestion.test_mode        = Rails.env.test? # record in memory in tests
  config.log_ingestion.broadcast_logger = true            # the app's Rails.logger warnings go to the service too

  # One entry per request ("GET /orders 200": method, path, status, controller, action,
  # durations, params...) and each exception escaping a request as its own entry.
  # config.log_ingestion.request_entries = true
  # While they are on, the log file shows one line per request ("GET /orders 200 12.3ms
  # controller=OrdersController#index request_id=...") instead of Rails' Started,
  # Processing by, Parameters, Rendered and Completed lines; :keep keeps Rails' lines.
  # config.log_ingestion.rails_request_lines = :replace
  # One entry per job run ("ExportJob performed": queue, arguments, duration, outcome).
  # config.log_ingestion.job_entries = true

  # The lowest Rails.logger level sent to the service (the log file keeps its own level).
  # :info also sends Rails' own lines (Enqueued, Performing, ...; Started, Processing and
  # Completed with rails_request_lines = :keep).
  # config.log_ingestion.logger_level = :warn

  # The old entries, off by default (each repeats what the request and job entries say):
  # "HTTP Request"/"HTTP Response"/"Request error" from a middleware, and the paths it skips.
  # config.log_ingestion.request_logging = true
  # config.log_ingestion.request_logging_skip_paths = %w[/assets /packs /rails /favicon.ico /health]
  # Rails instrumentation: "Action processed", "Slow SQL query", "Job enqueued", "Job performed".
  # config.log_ingestion.subscribers = %i[process_action sql enqueue perform] # or true for all
  # config.log_ingestion.slow_query_ms = 100 # "Slow SQL query" at or above this duration

  # Jobs carry job_id, job_class and the id of the request (or job) that enqueued them.
  # config.log_ingestion.job_context = true

  # "Rails application started" entry when the app boots to serve (never from rake,
  # runner, console or generators).
  # config.log_ingestion.startup_entry = true

  # Values of keys matching config.filter_parameters are masked in query strings, SQL
  # text and binds, logger lines and (as the default metadata_filter below) in every
  # entry's metadata. false switches that off; a list replaces it.
  # config.log_ingestion.filter_parameters = true

  # The one filter of every entry's metadata: params, job arguments, exceptions and what
  # your own code passes (LogIngestionClient.info("Signed in", { password: ... })),
  # also after LogIngestionClient.configure elsewhere. Default: the filter above. false
  # sends metadata unfiltered; an object with #call(hash) -> hash REPLACES it, so keep
  # the default masking inside yours:
  # config.log_ingestion.metadata_filter = lambda { |metadata|
  #   LogIngestion::ParameterFilter.current.call(metadata).except(:card_number, "card_number")
  # }

  # Client settings (defaults shown).
  # config.log_ingestion.batch_size = 512
  # config.log_ingestion.batch_interval = 1.0       # seconds
  # config.log_ingestion.max_retries = 5
  # config.log_ingestion.max_retry_elapsed = 300.0  # seconds an unavailable server (503, 429, refused) is retried
  # config.log_ingestion.max_queue_bytes = 16 * 1024 * 1024
  # config.log_ingestion.drop_policy = :newest      # or :oldest, when the queue is full
  # config.log_ingestion.shutdown_timeout = 5.0     # seconds to deliver what is queued at exit

  # Delivery failures ({kind:, message:, entries_lost:}); never log them through
  # Rails.logger, which may forward to this same client.
  # config.log_ingestion.on_error = ->(error) { $stderr.puts("log delivery: #{error[:kind]}: #{error[:message]}") }

  # Switch the whole integration off.
  # config.log_ingestion.enabled = true
end
