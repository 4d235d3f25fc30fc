# frozen_string_literal: true

require_relative "support/rails_app"

# README's Rails setup (the spec app's): one entry per request, exceptions as their own
# entries, and what the app itself logs at WARN and above.
RSpec.describe LogIngestion::RequestEntries do
  def show_exceptions
    env_config = Rails.application.env_config
    saved = env_config["action_dispatch.show_exceptions"]
    env_config["action_dispatch.show_exceptions"] = true # as in production
    yield
  ensure
    env_config["action_dispatch.show_exceptions"] = saved
  end

  def summary
    entries.map { |e| [e[:level], e[:message]] }
  end

  it "sends exactly one entry for a trivial GET" do
    get "/widgets", {}, "HTTP_X_REQUEST_ID" => "one-req-1"

    expect(last_response.status).to eq(200)
    expect(summary).to eq([["INFO", "GET /widgets 200"]])
  end

  it "builds the request entry from Rails' process_action payload and the request" do
    get "/widgets", {}, "HTTP_X_REQUEST_ID" => "one-req-2", "HTTP_USER_AGENT" => "spec-agent/2.0",
                        "REMOTE_ADDR" => "10.1.2.3"

    metadata = entries.first[:metadata]
    expect(metadata).to include("kind" => "request", "method" => "GET", "path" => "/widgets", "format" => "html",
                                "controller" => "WidgetsController", "action" => "index", "status" => 200,
                                "request_id" => "one-req-2", "remote_ip" => "10.1.2.3",
                                "user_agent" => "spec-agent/2.0")
    expect(metadata.values_at("duration_ms", "view_ms", "db_ms")).to all(be_a(Numeric).and(be >= 0))
    expect(metadata["allocations"]).to be_a(Integer).and(be > 0)
    expect(metadata).not_to include("params", "tags")
  end

  it "filters the query string of the path and the params, and leaves controller/action out of params" do
    get "/widgets", { "page" => "2", "password" => "hunter2" }

    entry = entries.first
    expect(entry[:message]).to eq("GET /widgets 200")
    expect(entry[:metadata]["path"]).to eq("/widgets?page=2&password=[FILTERED]")
    expect(entry[:metadata]["params"]).to eq("page" => "2", "password" => "[FILTERED]")
    expect(recorded_json).not_to include("hunter2")
  end

  it "sends three entries for a POST that runs a job: the request, the job and what the app logged" do
    post "/jobs/export", { user_id: 4 }, "HTTP_X_REQUEST_ID" => "post-req-1"

    expect(last_response.status).to eq(202)
    expect(summary).to contain_exactly(["INFO", "Export requested"], ["INFO", "ExportJob performed"],
                                       ["INFO", "POST /jobs/export 202"])
    expect(entries.map { |e| e[:metadata].values_at("request_id", "parent_request_id").compact })
      .to all(eq(["post-req-1"]))
  end

  it "forwards what the app logs at WARN, without the request id repeated as a tag" do
    get "/widgets/warning", {}, "HTTP_X_REQUEST_ID" => "warn-req-1"

    expect(summary).to eq([["WARN", "stock low"], ["INFO", "GET /widgets/warning 200"]])
    expect(entries.first[:metadata]).to eq("logger" => "rails", "severity" => "WARN", "request_id" => "warn-req-1")
  end

  it "sends a routing error (404) as exactly one WARN entry with the path and no request id in the text" do
    show_exceptions { get "/nope", { "token" => "abc" }, "HTTP_X_REQUEST_ID" => "nope-req-1" }

    expect(last_response.status).to eq(404)
    expect(summary).to eq([["WARN", 'ActionController::RoutingError: No route matches [GET] "/nope"']])
    metadata = entries.first[:metadata]
    expect(metadata).to include("kind" => "exception", "method" => "GET", "path" => "/nope", "status" => 404,
                                "request_id" => "nope-req-1")
    expect(metadata["exception"]).to include("class" => "ActionController::RoutingError")
    expect(metadata["exception"]["backtrace"]).to be_an(Array)
    expect(entries.first[:message]).not_to include("nope-req-1")
  end

  it "sends a routing error raised through the app (show_exceptions off) as one WARN entry too" do
    expect { get "/nope" }.to raise_error(ActionController::RoutingError)

    expect(summary).to eq([["WARN", 'ActionController::RoutingError: No route matches [GET] "/nope"']])
  end

  it "sends a 500 as two entries: the request (ERROR, status 500) and its exception, and no Rails FATAL line" do
    show_exceptions { get "/widgets/boom", {}, "HTTP_X_REQUEST_ID" => "boom-req-1" }

    expect(last_response.status).to eq(500)
    expect(summary).to eq([["ERROR", "GET /widgets/boom 500"], ["ERROR", "WidgetsController::Boom: widget exploded"]])
    exception = entries.last[:metadata]
    expect(exception).to include("kind" => "exception", "status" => 500, "path" => "/widgets/boom",
                                 "request_id" => "boom-req-1", "controller" => "WidgetsController")
    expect(exception["exception"]).to include("class" => "WidgetsController::Boom", "message" => "widget exploded")
    expect(exception["exception"]["backtrace"].size).to eq(LogIngestion::ExceptionDetails::BACKTRACE_LINES)
  end

  it "sends an exception Rails answers with a 404 from an action as a WARN request and a WARN exception" do
    show_exceptions { get "/widgets/missing" }

    expect(last_response.status).to eq(404)
    expect(summary).to eq([["WARN", "GET /widgets/missing 404"],
                           ["WARN", "ActiveRecord::RecordNotFound: Couldn't find Widget with 'id'=-1"]])
  end

  it "sends nothing for a request to LogIngestion::StatsEndpoint" do
    get "/log_ingestion/stats"

    expect(last_response.status).to eq(200)
    expect(entries).to eq([])
  end

  it "forwards no Rails line of a request at the default logger_level" do
    get "/widgets/chatty"

    expect(entries.map { |e| e[:metadata]["logger"] }).not_to include("rails")
  end

  it "sends nothing of its own with config.log_ingestion.request_entries = false (unsubscribed)" do
    described_class.unsubscribe
    get "/widgets"
    show_exceptions { get "/nope" }

    expect(entries.select { |e| e[:metadata]["kind"] }).to eq([])
  ensure
    described_class.subscribe
  end

  it "never raises into the request when building the entry fails: reported once through on_error" do
    reports = []
    LogIngestionClient.on_error = ->(report) { reports << report }
    broken = Class.new(LogIngestion::ParameterFilter) { def filter_query_string(_text) = raise("filter broke") }.new
    LogIngestion::ParameterFilter.current = broken

    2.times { get "/widgets?page=1" }

    expect(last_response.status).to eq(200)
    expect(reports.size).to eq(1)
    expect(reports.first[:message]).to include("request_entries failed", "filter broke")
  ensure
    LogIngestionClient.on_error = nil
  end
end
