# frozen_string_literal: true

# Raises real exceptions in the spec Rails app (spec/rails/app) with the gem installed and
# delivering to a real server, for the Errors page's browser test:
#
#   LOG_INGESTION_URL=... LOG_INGESTION_API_KEY=... LOG_INGESTION_SERVICE=... \
#     ruby -Ilib server/tests/browser/send_rails_errors.rb REQUEST_ID_PREFIX COUNT
#
# Requests GET /widgets/boom COUNT times (each its own request id, PREFIX-1..COUNT), flushes,
# and prints the request ids as JSON.
require "tmpdir"
ENV["RAILS_ENV"] = "test"
ENV["LOG_INGESTION_TEST_SHOW_EXCEPTIONS"] = "1" # as in production: Rails answers 500
ENV["LOG_INGESTION_TEST_DB"] ||= File.join(Dir.tmpdir, "log_ingestion_errors_browser_#{Process.pid}.sqlite3")
require_relative "../../../spec/rails/app/config/environment"
require "rack/mock"
require "json"

begin
  prefix = ARGV.fetch(0)
  count = Integer(ARGV.fetch(1, "3"))
  app = Rack::MockRequest.new(Rails.application)
  ids = (1..count).map do |i|
    id = "#{prefix}-#{i}"
    status = app.get("/widgets/boom", "HTTP_X_REQUEST_ID" => id).status
    raise "GET /widgets/boom answered #{status}" unless status == 500

    id
  end
  raise "entries were not delivered" unless LogIngestionClient.flush(timeout: 20)

  puts JSON.generate(ids)
ensure
  database = ENV.fetch("LOG_INGESTION_TEST_DB", nil)
  File.delete(database) if database && File.exist?(database)
end
