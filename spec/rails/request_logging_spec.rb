# frozen_string_literal: true

require_relative "support/rails_app"

# The old per-request entries, behind config.log_ingestion.request_logging = true: the
# app here has the middleware where that setting inserts it.
RSpec.describe LogIngestion::RequestLogging do
  def app
    RailsAppHelpers.request_logging_app
  end

  it "gives the request, response and request entries of one request the same Rails request id" do
    get "/widgets", {}, "HTTP_X_REQUEST_ID" => "req-abc-123"

    expect(last_response.status).to eq(200)
    ids = ["HTTP Request", "HTTP Response", "GET /widgets 200"].map { |m| entry_with(m)[:metadata]["request_id"] }
    expect(ids).to eq(%w[req-abc-123 req-abc-123 req-abc-123])
    expect(last_response.headers["X-Request-Id"]).to eq("req-abc-123")
  end

  it "logs method, path, filtered query string, ip, user agent and referer with the request" do
    get "/widgets", { "page" => "2", "password" => "hunter2" },
        "HTTP_USER_AGENT" => "spec-agent/1.0", "HTTP_REFERER" => "http://example.test/from", "REMOTE_ADDR" => "10.1.2.3"

    metadata = entry_with("HTTP Request")[:metadata]
    expect(metadata).to include("method" => "GET", "path" => "/widgets", "ip" => "10.1.2.3",
                                "user_agent" => "spec-agent/1.0", "referer" => "http://example.test/from",
                                "pid" => Process.pid)
    expect(metadata["query_string"]).to eq("page=2&password=[FILTERED]")
  end

  it "logs status, duration and content type with the response" do
    get "/widgets"

    metadata = entry_with("HTTP Response")[:metadata]
    expect(metadata).to include("status" => 200, "content_type" => a_string_starting_with("application/json"))
    expect(metadata["duration_ms"]).to be_a(Numeric).and(be >= 0)
  end

  it "logs an exception as an error entry with class, message and its cleaned backtrace and lets it propagate" do
    expect { get "/widgets/boom" }.to raise_error(WidgetsController::Boom, "widget exploded")

    error = entry_with("Request error")
    expect(error[:level]).to eq("ERROR")
    expect(error[:metadata]["exception"]).to include("class" => "WidgetsController::Boom", "message" => "widget exploded")
    expect(error[:metadata]["exception"]["backtrace"].size).to eq(LogIngestion::ExceptionDetails::BACKTRACE_LINES)
    expect(error[:metadata]["status"]).to eq(500)
    expect(entry_with("HTTP Response")[:metadata]["status"]).to eq(500)
  end

  it "logs the exception before ShowExceptions turns it into a 500 page (production setting)" do
    Rails.application.env_config["action_dispatch.show_exceptions"] = true
    get "/widgets/boom"

    expect(last_response.status).to eq(500)
    expect(entry_with("Request error")[:metadata]["exception"]["class"]).to eq("WidgetsController::Boom")
  ensure
    Rails.application.env_config["action_dispatch.show_exceptions"] = false
  end

  it "does not log the default skip paths" do
    get "/assets/app.css"

    expect(last_response.status).to eq(200)
    expect(entries_with("HTTP Request")).to be_empty
  end

  it "makes up a request id when ActionDispatch::RequestId is not in the stack" do
    inner = ->(_env) { [204, {}, []] }
    status, = described_class.new(inner).call(Rack::MockRequest.env_for("/bare"))

    expect(status).to eq(204)
    expect(entry_with("HTTP Request")[:metadata]["request_id"]).to match(/\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/)
  end

  context "with Client-IP and a different X-Forwarded-For (ActionDispatch::RemoteIp::IpSpoofAttackError)" do
    let(:spoofing) { { "HTTP_CLIENT_IP" => "1.1.1.1", "HTTP_X_FORWARDED_FOR" => "2.2.2.2", "REMOTE_ADDR" => "203.0.113.9" } }

    # Rails 6.1's own Rails::Rack::Logger renders remote_ip into its "Started GET" line
    # when the log level is debug or info (and raises there, before any gem code runs),
    # so these requests go through the app at warn, as in a quiet production setup.
    around do |example|
      level = Rails.logger.level
      Rails.logger.level = :warn
      example.run
    ensure
      Rails.logger.level = level
    end

    it "answers 200 and logs the request with request.ip and a note of the spoofing attempt" do
      get "/widgets", {}, spoofing

      expect(last_response.status).to eq(200)
      metadata = entry_with("HTTP Request")[:metadata]
      expect(metadata["ip"]).to eq("203.0.113.9")
      expect(metadata["ip_spoofing"]).to include("1.1.1.1", "2.2.2.2")
      expect(entry_with("HTTP Response")[:metadata]["status"]).to eq(200)
    end

    it "caps the note however long the headers are" do
      get "/widgets", {}, spoofing.merge("HTTP_X_FORWARDED_FOR" => Array.new(300) { |i| "3.3.#{i % 250}.1" }.join(","))

      expect(last_response.status).to eq(200)
      expect(entry_with("HTTP Request")[:metadata]["ip_spoofing"].bytesize).to be <= LogIngestion::RequestIp::NOTE_LIMIT
    end
  end

  it "lets the host's interrupts (Timeout's, rack-timeout's) through instead of swallowing them" do
    interrupted = Class.new(LogIngestion::ParameterFilter) { def filter_query_string(_text) = raise(Timeout::Error, "late") }.new
    stack = described_class.new(->(_env) { [204, {}, []] }, filter: interrupted)

    expect { stack.call(Rack::MockRequest.env_for("/bare?a=1")) }.to raise_error(Timeout::Error, "late")
  end

  it "never raises into the app when building its entries fails, and reports that once through on_error" do
    reports = []
    LogIngestionClient.on_error = ->(report) { reports << report }
    broken = Class.new(LogIngestion::ParameterFilter) { def filter_query_string(_text) = raise("filter broke") }.new
    stack = described_class.new(->(_env) { [204, {}, []] }, filter: broken)

    2.times { expect(stack.call(Rack::MockRequest.env_for("/bare?a=1")).first).to eq(204) }
    expect(reports.size).to eq(1)
    expect(reports.first).to include(kind: "internal", message: a_string_including("RuntimeError: filter broke"))
  ensure
    LogIngestionClient.on_error = nil
  end
end
