# frozen_string_literal: true

require "open3"
require "json"
require "tmpdir"
require "rbconfig"
require_relative "support/guide_files"

# The guide's own Loggable, LoggableJob, RequestLoggingMiddleware, notifications
# initializer and LogIngestionLogger, extracted from the guide at run time and loaded
# into the test app (in a process of its own), work unchanged on this gem.
RSpec.describe "the guide's hand-written Rails files on this gem" do
  before(:all) do
    skip "guide not found at #{GuideFiles.guide_path} (set LOG_INGESTION_GUIDE)" unless GuideFiles.available?

    Dir.mktmpdir("li-guide") do |dir|
      GuideFiles.extract(File.join(dir, "guide"))
      env = { "LOG_INGESTION_GUIDE_DIR" => File.join(dir, "guide"), "LOG_INGESTION_URL" => nil,
              "LOG_INGESTION_TEST_DB" => File.join(dir, "guide.sqlite3") }
      out, err, status = Open3.capture3(env, RbConfig.ruby, File.expand_path("support/guide_app_runner.rb", __dir__))
      raise "guide app failed (#{status}):\n#{err}" unless status.success?

      @result = JSON.parse(out)
    end
  end

  let(:entries) { @result.fetch("entries") }

  def messages
    entries.map { |e| e["message"] }
  end

  it "boots the app with the guide's files loaded and serves requests through them" do
    expect(@result["outcomes"]).to include("index" => 200, "slow" => 200)
  end

  it "logs requests through the guide's middleware and Loggable concern" do
    requests = entries.select { |e| e["message"] == "HTTP Request" && e["metadata"]["path"] == "/widgets" }
    expect(requests.size).to eq(2)
    expect(messages).to include("HTTP Response", "Action processed")
  end

  it "logs the guide middleware's and concern's errors and still propagates the exception" do
    expect(@result["outcomes"]["boom"]).to eq("WidgetsController::Boom")
    expect(messages).to include("Request error", "Request failed")
  end

  it "logs a slow query through the guide's notifications initializer" do
    slow = entries.find { |e| e["message"] == "Slow SQL query" }
    expect(slow["level"]).to eq("WARN")
    expect(slow["metadata"]["duration_ms"]).to be >= 150
  end

  it "logs jobs through LoggableJob and the guide's job subscribers, and propagates a failure" do
    expect(@result["outcomes"]["failing_job"]).to eq("FailingJob::Failure")
    expect(messages).to include("Job enqueued", "Job started", "Job completed", "Job performed")
    expect(messages.count("Job failed")).to eq(2)
  end

  it "forwards Rails.logger records through the guide's LogIngestionLogger" do
    line = entries.find { |e| e["message"] == "guide logger line" }
    expect(line["level"]).to eq("WARN")
    expect(line["metadata"]).to include("severity" => 2)
  end
end
