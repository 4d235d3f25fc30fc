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

  # In tests, record entries in memory (LogIngestionClient.recorded_entries) instead of sending.
  config.log_ingestion.test_mode = Rails.env.test?

  # Log every request, its response and errors (request id, method, path, filtered
  # query string, ip, user agent, referer, status, duration, content type).
  config.log_ingestion.request_logging = true
  # config.log_ingestion.request_logging_skip_paths = %w[/assets /packs /rails /favicon.ico /health]

  # Rails instrumentation to log; remove names to switch one off, or set false.
  # config.log_ingestion.subscribers = %i[process_action sql enqueue perform]
  # config.log_ingestion.slow_query_ms = 100 # "Slow SQL query" at or above this duration

  # Send Rails.logger's records to the service too (beside the log file).
  # config.log_ingestion.broadcast_logger = true

  # "Rails application started" entry at boot.
  # config.log_ingestion.startup_entry = true

  # Values of keys matching config.filter_parameters are masked in params, query
  # strings, SQL binds and metadata. false switches that off; a list replaces it.
  # config.log_ingestion.filter_parameters = true

  # The same filter also runs on the metadata your own code passes
  # (LogIngestionClient.info("Signed in", { password: ... })). false switches that
  # off; any object with #call(hash) -> hash replaces it.
  # config.log_ingestion.metadata_filter = ->(metadata) { metadata.except(:card_number) }

  # Client settings (defaults shown).
  # config.log_ingestion.batch_size = 512
  # config.log_ingestion.batch_interval = 1.0       # seconds
  # config.log_ingestion.max_retries = 5
  # config.log_ingestion.max_retry_elapsed = 300.0  # seconds an unavailable server (503, 429, refused) is retried
  # config.log_ingestion.max_queue_bytes = 16 * 1024 * 1024
  # config.log_ingestion.drop_policy = :newest      # or :oldest, when the queue is full
  # config.log_ingestion.shutdown_timeout = 5.0     # seconds to deliver what is queued at exit
  # config.log_ingestion.on_error = ->(error) { Rails.logger.warn("log delivery: #{error}") }
end
