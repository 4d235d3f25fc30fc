# frozen_string_literal: true

# Run by spec/rails/guide_files_spec.rb in a process of its own: boots spec/rails/app
# with the guide's hand-written files (LOG_INGESTION_GUIDE_DIR) in place of the
# gem's glue, exercises it, and prints every recorded entry as JSON on stdout.
$LOAD_PATH.unshift(File.expand_path("../../../lib", __dir__))
ENV["RAILS_ENV"] = "test"
ENV["ENABLE_LOG_INGESTION"] = "true" # what the guide's LogIngestionLogger checks
require_relative "../app/config/environment"
require "rack/mock"
require "json"

session = Rack::MockRequest.new(Rails.application)
outcomes = {}
outcomes[:index] = session.get("/widgets", "HTTP_X_REQUEST_ID" => "guide-req-1").status
begin
  session.get("/widgets/boom")
  outcomes[:boom] = "no exception"
rescue WidgetsController::Boom => e
  outcomes[:boom] = e.class.name
end
outcomes[:slow] = session.get("/widgets/slow?ms=150").status
ExportJob.perform_later(11)
begin
  FailingJob.perform_later(12)
  outcomes[:failing_job] = "no exception"
rescue FailingJob::Failure => e
  outcomes[:failing_job] = e.class.name
end
Rails.logger.warn("guide logger line")

$stdout.write(JSON.generate(outcomes: outcomes, entries: LogIngestionClient.recorded_entries))
