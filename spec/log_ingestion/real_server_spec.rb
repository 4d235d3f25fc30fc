# frozen_string_literal: true

require "spec_helper"
require "securerandom"

# Against the real ingestion server (server/) and PostgreSQL: rows counted in the database.
RSpec.describe "LogIngestionClient against the real server", :native, :server do
  let(:server) { RealIngestionServer.shared }
  let(:service) { "real-#{SecureRandom.hex(4)}" }
  let(:reports) { Queue.new }
  let(:client) do
    LogIngestion::Client.new.configure(
      LogIngestion::Configuration.new(api_url: server.url, api_key: server.api_key, service: service,
                                      batch_interval: 0.05, on_error: ->(report) { reports << report })
    )
  end

  after { client.shutdown(timeout: 5) }

  # The start of a child process's script: LogIngestionClient configured for this
  # server and service.
  def configure_in_child(batch_interval:)
    <<~RUBY
      require "log_ingestion"
      LogIngestionClient.configure do |c|
        c.api_url = #{server.url.inspect}
        c.api_key = #{server.api_key.inspect}
        c.service = #{service.inspect}
        c.batch_interval = #{batch_interval}
      end
    RUBY
  end

  it "stores entries with their level, message and metadata" do
    client.log("WARNING", "stored", { at: Time.utc(2024, 1, 1), user: :admin, nested: { list: [1, 2] } })
    expect(client.flush(timeout: 10)).to be(true)
    expect(server.count(service: service)).to eq(1)
    expect(server.metadata(service: service, message: "stored"))
      .to eq("at" => "2024-01-01T00:00:00.000000Z", "user" => "admin", "nested" => { "list" => [1, 2] })
  end

  it "stores exactly every entry logged by 8 threads at once" do
    threads = Array.new(8) { |t| Thread.new { 500.times { |i| client.log("INFO", "t#{t} m#{i}", { i: i }) } } }
    threads.each(&:join)
    expect(client.flush(timeout: 30)).to be(true)
    expect(server.count(service: service)).to eq(4000)
    expect(client.stats).to include(enqueued: 4000, sent: 4000, dropped_queue_full: 0)
  end

  it "keeps the order of entries from one thread" do
    20.times { |i| client.log("INFO", format("ordered %02d", i)) }
    client.flush(timeout: 10)
    expect(server.messages(service: service)).to eq((0...20).map { |i| format("ordered %02d", i) })
  end

  it "delivers the entries of a child process that exits with them queued" do
    script = configure_in_child(batch_interval: 60) + <<~RUBY
      100.times { |i| LogIngestionClient.info("exiting \#{i}") }
    RUBY
    _out, err, status = run_ruby(script)
    expect(status).to be_success, err
    expect(server.count(service: service)).to eq(100)
  end

  it "stores the entries of a parent and its forked child once each" do
    script = configure_in_child(batch_interval: 0.05) + <<~RUBY
      10.times { |i| LogIngestionClient.info("parent \#{i}") }
      pid = fork { 10.times { |i| LogIngestionClient.info("child \#{i}") } }
      Process.wait(pid)
      10.times { |i| LogIngestionClient.info("parent after \#{i}") }
    RUBY
    _out, err, status = run_ruby(script)
    expect(status).to be_success, err
    messages = server.messages(service: service)
    expect(messages.size).to eq(30)
    expect(messages.tally.values.uniq).to eq([1])
  end

  it "works with the guide's configuration from the environment, unchanged" do
    script = <<~RUBY
      require "log_ingestion_client"
      LogIngestionClient.configure
      LogIngestionClient.info("Test log from Rails", { test: true })
      LogIngestionClient.warn("careful")
      LogIngestionClient.error("failed", { error: { class: "E", message: "m" } })
      LogIngestionClient.flush
    RUBY
    env = { "LOG_INGESTION_URL" => server.url, "LOG_INGESTION_API_KEY" => server.api_key,
            "LOG_INGESTION_SERVICE" => service }
    _out, err, status = run_ruby(script, env: env)
    expect(status).to be_success, err
    expect(server.messages(service: service)).to eq(["Test log from Rails", "careful", "failed"])
  end

  it "counts an entry the server rejects (empty message) without resending it" do
    client.log("INFO", "")
    client.log("INFO", "kept")
    client.flush(timeout: 10)
    expect(client.stats).to include(rejected_by_server: 1, sent: 1)
    expect(server.messages(service: service)).to eq(["kept"])
  end
end
