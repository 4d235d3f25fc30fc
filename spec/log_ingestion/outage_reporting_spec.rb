# frozen_string_literal: true

require "spec_helper"
require "socket"
require "timeout"

# What an app hears of an outage of the ingestion service: one line on stderr when
# delivery starts failing and one when it recovers (through the default on_error; a
# user's on_error gets both reports instead), the last error with its time kept in
# stats beside the last success, and a one-attempt send_log that answers a refused
# connection at once.
RSpec.describe "an outage of the ingestion service", :native do
  let(:server) { FakeIngestionServer.start }
  let(:clients) { [] }

  after do
    clients.each { |client| client.shutdown(timeout: 0.5) }
    server.stop
  end

  def client_for(url = server.url, **settings)
    configuration = LogIngestion::Configuration.new(
      api_url: url, api_key: "test-key", service: "outage-spec", batch_interval: 0.05, batch_size: 1,
      retry_delay: 0.01, max_retry_delay: 0.05, **settings
    )
    LogIngestion::Client.new.configure(configuration).tap { |client| clients << client }
  end

  # The server answers 503 to the first +failures+ requests, then accepts.
  def fail_first(failures)
    answered = 0
    lock = Mutex.new
    server.respond_with do |request|
      failing = lock.synchronize { (answered += 1) <= failures }
      failing ? [503, {}, { error: "down for maintenance" }] : server.accepted(request)
    end
  end

  def closed_port_url
    socket = TCPServer.new("127.0.0.1", 0)
    port = socket.addr[1]
    socket.close
    "http://127.0.0.1:#{port}"
  end

  # A child that logs three entries through an outage of five 503s and exits.
  def outage_child(on_error)
    <<~RUBY
      require "log_ingestion"
      LogIngestionClient.configure do |c|
        c.api_url = #{server.url.inspect}; c.api_key = "test-key"; c.service = "outage-spec"
        c.batch_interval = 0.05; c.batch_size = 1; c.retry_delay = 0.01; c.max_retry_delay = 0.05
        #{on_error}
      end
      3.times { |i| LogIngestionClient.info("entry \#{i}") }
      LogIngestionClient.flush(timeout: 10) or abort "not flushed"
    RUBY
  end

  it "prints one line on stderr when delivery starts failing and one when it recovers, with counts" do
    fail_first(5)
    _out, err, status = run_ruby(outage_child(""))
    expect(status).to be_success, err
    expect(server.messages.last(3)).to eq(["entry 0", "entry 1", "entry 2"])

    lines = err.lines.grep(/log_ingestion:/)
    expect(lines.size).to eq(2), err
    expect(lines[0]).to match(/WARN.*log_ingestion: outage: log delivery is failing: HTTP 503 .*down for maintenance/)
    expect(lines[1]).to match(/WARN.*log_ingestion: recovered: log delivery recovered after [\d.]+ s: 3 entries waiting, 5 failed attempts, 5 requests retried, 0 entries dropped/)
  end

  it "hands both reports to a user's on_error instead, and prints nothing" do
    fail_first(5)
    out, err, status = run_ruby(outage_child('c.on_error = ->(report) { puts "on_error #{report[:kind]} #{report[:entries_lost]}" }'))
    expect(status).to be_success, err
    expect(out.lines.map(&:chomp)).to eq(["on_error outage 0", "on_error recovered 0"])
    expect(err).not_to include("log_ingestion:")
  end

  it "keeps last_error after recovery, with last_error_at before last_success_at" do
    fail_first(2)
    client = client_for(on_error: ->(_report) {})
    client.log("INFO", "late")
    expect(client.flush(timeout: 10)).to be(true)

    stats = client.stats
    expect(stats[:last_error]).to include("HTTP 503")
    expect(stats[:last_error_at]).to be_a(Time).and(be_utc)
    expect(stats[:last_success_at]).to be_a(Time).and(be >= stats[:last_error_at])
  end

  it "has no last_error_at or last_success_at before anything was sent" do
    expect(client_for.stats).to include(last_error: nil, last_error_at: nil, last_success_at: nil)
  end

  it "answers send_log(retries: false) on a refused connection at once, naming the refusal" do
    reports = Queue.new
    client = client_for(closed_port_url, on_error: ->(report) { reports << report })
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    expect(client.send_log({ message: "probe" }, timeout: 30, retries: false)).to be_nil
    # Retried like a batch it would wait out its 30 s timeout; loose bound.
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 5
    expect(client.stats[:last_error]).to match(/onnection refused.*one attempt, not retried/)
    expect(Timeout.timeout(10) { reports.pop }).to include(kind: "retries_exhausted", entries_lost: 1)
  end
end
