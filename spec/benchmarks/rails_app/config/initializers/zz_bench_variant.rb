# frozen_string_literal: true

# The variant's settings, after the install generator's initializer (log_ingestion.rb),
# through public settings only:
#   rails                    Rails' default logging
#   lograge                  lograge with its JSON formatter
#   log_ingestion            the install generator's initializer as it is (README's setup)
#   log_ingestion_client     the Rails glue off (config.log_ingestion.enabled = false);
#                            the client configured from LOG_INGESTION_URL/_API_KEY/_SERVICE
#   log_ingestion_test_mode  README's setup recording in memory: no delivery at all
#   log_ingestion_verbose    README's setup with every entry the glue can send: the request
#                            middleware, every subscriber, Rails.logger from :info
case ENV.fetch("BENCH_VARIANT")
when "lograge"
  Rails.application.configure do
    config.lograge.enabled = true
    config.lograge.formatter = Lograge::Formatters::Json.new
  end
when "log_ingestion_client"
  Rails.application.configure { config.log_ingestion.enabled = false }
  LogIngestionClient.configure
when "log_ingestion_test_mode"
  Rails.application.configure { config.log_ingestion.test_mode = true }
when "log_ingestion_verbose"
  Rails.application.configure do
    config.log_ingestion.request_logging = true
    config.log_ingestion.subscribers = true
    config.log_ingestion.broadcast_logger = true
    config.log_ingestion.logger_level = :info
  end
end
