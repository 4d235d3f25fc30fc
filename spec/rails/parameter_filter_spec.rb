# frozen_string_literal: true

require_relative "support/rails_app"

RSpec.describe LogIngestion::ParameterFilter do
  after { LogIngestion::Subscribers.subscribe(slow_query_ms: LogIngestion::Subscribers::DEFAULT_SLOW_QUERY_MS) }

  it "keeps a filtered parameter out of every entry a request, its SQL, a job and the logger make" do
    LogIngestion::Subscribers.subscribe(slow_query_ms: 0) # every query is "slow": binds are logged
    post "/widgets?password=hunter2", { name: "gear", password: "hunter2" }
    post "/jobs/export", { user_id: 3 }
    Rails.logger.info("login with password=hunter2 and {:secret_token=>\"hunter2\"}")
    LogIngestion::Logger.new(nil).info({ password: "hunter2" })

    expect(last_response.status).to eq(202)
    expect(entries.size).to be > 10
    expect(recorded_json).to include("[FILTERED]")
    expect(recorded_json).not_to include("hunter2")
  end

  it "uses the application's config.filter_parameters" do
    expect(described_class.current.filters).to include(:password, :secret_token)
  end

  it "masks nested keys in hashes and arrays" do
    filter = described_class.new([:password])

    expect(filter.filter([{ user: { password: "x", name: "n" } }])).to eq([{ user: { password: "[FILTERED]", name: "n" } }])
  end

  it "leaves everything as it is with no filters" do
    filter = described_class.new([])

    expect(filter.filter_query_string("password=x")).to eq("password=x")
    expect(filter.filter_text("password=x")).to eq("password=x")
  end
end
