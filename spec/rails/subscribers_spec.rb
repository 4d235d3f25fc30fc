# frozen_string_literal: true

require_relative "support/rails_app"

# The old Notifications entries, behind config.log_ingestion.subscribers = true (or a list).
RSpec.describe LogIngestion::Subscribers do
  before { described_class.subscribe(only: described_class::ALL, slow_query_ms: described_class::DEFAULT_SLOW_QUERY_MS) }

  it "logs a query slower than the threshold as a Slow SQL query warning" do
    get "/widgets/slow", ms: 150

    slow = entries_with("Slow SQL query").find { |e| e[:metadata]["sql"].include?("sleep_ms") }
    expect(slow[:level]).to eq("WARN")
    expect(slow[:metadata]["duration_ms"]).to be >= 150
    expect(slow[:metadata]["threshold_ms"]).to eq(100)
    expect(slow[:metadata]["request_id"]).to eq(entry_with("GET /widgets/slow 200")[:metadata]["request_id"])
  end

  it "never raises into the instrumented code when a subscriber fails: reported once through on_error" do
    reports = []
    LogIngestionClient.on_error = ->(report) { reports << report }
    broken = Class.new(LogIngestion::ParameterFilter) { def filter_text(_text) = raise("sql filter broke") }.new
    LogIngestion::ParameterFilter.current = broken
    described_class.subscribe(slow_query_ms: 0)
    forwarder = RailsAppHelpers.forwarder
    forwarder.forward_level = :debug # Rails logs SQL at DEBUG, forwarded from this level

    2.times { expect(Widget.create!(name: "gear")).to be_persisted }
    # Once per source: the subscriber's, and the Logger's (Rails logs the same SQL through it).
    expect(reports.map { |r| r[:message][/\A\S+ (\w+) failed/, 1] }).to contain_exactly("sql_subscriber", "logger")
    expect(reports).to all(include(kind: "internal", message: a_string_including("sql filter broke")))
  ensure
    LogIngestionClient.on_error = nil
  end

  it "does not log a query faster than the threshold" do
    get "/widgets/slow", ms: 0

    expect(entries_with("Slow SQL query")).to be_empty
  end

  it "masks filtered bind values of a logged query" do
    described_class.subscribe(slow_query_ms: 0)
    Widget.create!(name: "gear", password: "hunter2")

    insert = entries_with("Slow SQL query").find { |e| e[:metadata]["sql"].start_with?("INSERT") }
    expect(insert[:metadata]["binds"]).to include({ "name" => "password", "value" => "[FILTERED]" },
                                                  { "name" => "name", "value" => "gear" })
  end

  it "logs a processed action with controller, action, status and timings" do
    get "/widgets"

    metadata = entry_with("Action processed")[:metadata]
    expect(metadata).to include("controller" => "WidgetsController", "action" => "index", "method" => "GET",
                                "path" => "/widgets", "status" => 200)
    expect(metadata.keys).to include("duration_ms", "view_runtime", "db_runtime")
  end

  it "logs a failed action with the exception and the status it maps to" do
    expect { get "/widgets/boom" }.to raise_error(WidgetsController::Boom)

    metadata = entry_with("Action processed")[:metadata]
    expect(metadata).to include("status" => 500)
    expect(metadata["error"]).to include("class" => "WidgetsController::Boom")
  end

  it "subscribes only the subscribers named, so each can be switched off" do
    described_class.subscribe(only: %i[sql enqueue perform], slow_query_ms: 0)
    get "/widgets"

    expect(entries_with("Action processed")).to be_empty
    expect(entries_with("Slow SQL query")).not_to be_empty
    expect(described_class.subscribed).to eq(%i[sql enqueue perform])
  end

  it "stays silent once unsubscribed" do
    described_class.unsubscribe
    get "/widgets"
    ExportJob.perform_later(1)

    expect(entries.map { |e| e[:message] } & ["Action processed", "Job enqueued", "Job performed"]).to be_empty
  end

  it "rejects an unknown subscriber name" do
    expect { described_class.subscribe(only: %i[sql mailer]) }.to raise_error(ArgumentError, /mailer/)
  end
end
