# frozen_string_literal: true

require "socket"

# Rake tasks of the log_ingestion gem (loaded by LogIngestion::Railtie):
#   rails logs:test   sends one test entry now, says whether the service accepted it, flushes the queue
#   rails logs:stats  prints the delivery counters of the rake process itself (not the running app's:
#                     mount LogIngestion::StatsEndpoint in the app for those)
namespace :logs do
  desc "Send a test entry to the log ingestion service and report whether it arrived"
  task test: :environment do
    unless LogIngestionClient.configured?
      abort "log_ingestion: not configured (set config.log_ingestion.api_url/api_key, " \
            "LOG_INGESTION_URL/LOG_INGESTION_API_KEY, or credentials log_ingestion.url/api_key)"
    end

    puts "log_ingestion: sending a test entry to #{LogIngestionClient.api_url.inspect} " \
         "as service #{LogIngestionClient.service.inspect}"
    # One attempt, not retried: a refused connection answers at once, an unreachable
    # host within open_timeout, a server that does not answer within read_timeout.
    settings = LogIngestionClient.client.configuration
    answer = LogIngestionClient.send_log({
                                           level: "INFO", message: "Test log from Rails (rails logs:test)",
                                           metadata: { test: true, environment: Rails.env.to_s,
                                                       pid: Process.pid, host: Socket.gethostname }
                                         }, retries: false, timeout: settings.open_timeout + settings.read_timeout + 1)
    if answer
      puts "log_ingestion: the service accepted it: #{answer.inspect}"
      # Deliver what this process queued before (e.g. the startup entry) now too.
      flushed = LogIngestionClient.flush(timeout: 10)
      puts "log_ingestion: entries queued before it could not all be delivered" unless flushed
    else
      last_error = LogIngestionClient.stats[:last_error] || "none recorded; see the warning above"
      abort "log_ingestion: the test entry did NOT arrive (last error: #{last_error})"
    end
  end

  desc "Print this rake process's log ingestion counters (the app's own: mount LogIngestion::StatsEndpoint)"
  task stats: :environment do
    puts "log_ingestion: counters of this rake process (pid #{Process.pid}) only -- not of the running app, " \
         "whose processes (each Puma worker) count on their own; mount LogIngestion::StatsEndpoint to read theirs"
    LogIngestionClient.stats.each { |name, value| puts format("%-28<name>s %<value>s", name: name, value: value.inspect) }
  end
end
