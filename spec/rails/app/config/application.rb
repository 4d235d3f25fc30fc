# frozen_string_literal: true

# A tiny Rails 6.1 application the Rails specs boot in-process (and Puma boots in
# the end-to-end spec). Settings come from ENV so one app serves every spec:
#   LOG_INGESTION_TEST_MODE=1   record entries in memory (default when no URL is set)
#   LOG_INGESTION_TEST_UNCONFIGURED=1  neither test mode nor a URL: the unconfigured case
#   LOG_INGESTION_TEST_DB       path of the sqlite3 file (default: a file in Dir.tmpdir)
#   LOG_INGESTION_TEST_LOG      path of the Rails log (default: an in-memory StringIO)
#   LOG_INGESTION_TEST_SPOOL_DIR  spool_dir (default: no spool)
#   LOG_INGESTION_TEST_RAILS_REQUEST_LINES  rails_request_lines (default: the gem's, :replace)
#   LOG_INGESTION_TEST_JOB_DIR  jobs go to this directory (FileQueueAdapter) instead of
#                               running inline; another process runs them
#   LOG_INGESTION_GUIDE_DIR     a directory of the guide's hand-written files to load
#                               instead of the gem's glue (see support/guide_files.rb)
require "tmpdir"
require "stringio"
require "rails"
require "active_record/railtie"
require "active_job/railtie"
require "action_controller/railtie"

require "log_ingestion/rails" # also when log_ingestion was required before Rails

module LogIngestionTestApp
  GUIDE_DIR = ENV["LOG_INGESTION_GUIDE_DIR"]

  class << self
    # Where Rails.logger writes (a StringIO unless LOG_INGESTION_TEST_LOG is set).
    attr_accessor :log_output
  end

  class Application < Rails::Application
    config.root = File.expand_path("..", __dir__)
    config.eager_load = false
    config.cache_classes = true
    config.secret_key_base = "log-ingestion-test-app-secret-key-base-" * 3
    config.hosts.clear
    config.cache_store = :null_store
    config.consider_all_requests_local = false
    config.action_dispatch.show_exceptions = ENV["LOG_INGESTION_TEST_SHOW_EXCEPTIONS"] == "1"
    if ENV["LOG_INGESTION_TEST_JOB_DIR"]
      require_relative "../lib/file_queue_adapter"
      config.active_job.queue_adapter = FileQueueAdapter.new(ENV["LOG_INGESTION_TEST_JOB_DIR"])
    else
      config.active_job.queue_adapter = :inline
    end
    config.filter_parameters += %i[password secret_token token pin_code]
    config.paths["config/database"] = File.expand_path("database.yml", __dir__)
    config.paths["log"] = File.join(Dir.tmpdir, "log_ingestion_test_app.log")
    config.paths["tmp"] = Dir.tmpdir

    LogIngestionTestApp.log_output = ENV["LOG_INGESTION_TEST_LOG"] ? File.open(ENV["LOG_INGESTION_TEST_LOG"], "a") : StringIO.new
    LogIngestionTestApp.log_output.sync = true
    config.logger = ActiveSupport::TaggedLogging.new(ActiveSupport::Logger.new(LogIngestionTestApp.log_output))
    config.log_level = :debug
    config.log_tags = [:request_id]

    config.log_ingestion.service = ENV.fetch("LOG_INGESTION_SERVICE", "rails-spec-app")
    unless ENV["LOG_INGESTION_TEST_UNCONFIGURED"] == "1"
      config.log_ingestion.test_mode = true if ENV["LOG_INGESTION_URL"].to_s.empty? || ENV["LOG_INGESTION_TEST_MODE"] == "1"
    end
    config.log_ingestion.batch_interval = Float(ENV.fetch("LOG_INGESTION_TEST_BATCH_INTERVAL", "0.2"))
    # No spool unless a spec gives one: a spool in the shared tmp/ would carry one
    # spec's undelivered entries into the next spec's server.
    config.log_ingestion.spool_dir = ENV.fetch("LOG_INGESTION_TEST_SPOOL_DIR", false)
    config.log_ingestion.rails_request_lines = ENV["LOG_INGESTION_TEST_RAILS_REQUEST_LINES"]&.to_sym

    if GUIDE_DIR
      # The guide's hand-written integration instead of the gem's glue, placed as
      # the guide says: concerns autoloaded, middleware and logger required by
      # config/application.rb, notifications subscribed from an initializer.
      require File.join(GUIDE_DIR, "lib", "request_logging_middleware.rb")
      require File.join(GUIDE_DIR, "lib", "log_ingestion_logger.rb")
      config.log_ingestion.request_logging = false
      config.log_ingestion.subscribers = false
      config.log_ingestion.startup_entry = false
      config.autoload_paths << File.join(GUIDE_DIR, "autoload")
      config.logger = LogIngestionLogger.new(LogIngestionTestApp.log_output)
      config.middleware.insert_before ActionDispatch::ShowExceptions, RequestLoggingMiddleware
      initializer "guide.notifications" do
        load File.join(GUIDE_DIR, "initializers", "active_support_notifications.rb")
      end
    else
      # README's setup: the request and job entries (on by default) and what the app
      # itself logs at WARN and above through Rails.logger.
      config.log_ingestion.broadcast_logger = true
    end
  end
end
