# frozen_string_literal: true

require "spec_helper"
require "securerandom"
require "tmpdir"
require "fileutils"

# The spool: what the service cannot take at exit is kept in spool_dir and delivered
# by the next engine started on it. Counted in the real server's database.
RSpec.describe "The spool", :native, :server do
  include Subprocess

  let(:server) { RealIngestionServer.shared }
  let(:service) { "spool-#{SecureRandom.hex(4)}" }
  let(:dir) { Dir.mktmpdir("li-spool") }
  let(:reports) { Queue.new }
  let(:clients) { [] }

  after do
    clients.each { |client| client.shutdown(timeout: 5) }
    FileUtils.remove_entry(dir)
  end

  def refused_url
    "http://127.0.0.1:#{RealIngestionServer.free_port}"
  end

  def client(url, **settings)
    configuration = LogIngestion::Configuration.new(
      api_url: url, api_key: server.api_key, service: service, batch_interval: 0.05,
      spool_dir: dir, on_error: ->(report) { reports << report }, **settings
    )
    LogIngestion::Client.new.configure(configuration).tap { |c| clients << c }
  end

  # Logs +count+ entries with the service down and exits: one spool file.
  def spool(count, prefix: "spooled")
    down = client(refused_url)
    count.times { |i| down.log("INFO", "#{prefix} #{i}") }
    expect(down.shutdown(timeout: 5)).to eq(delivered: 0, undelivered: 0, spooled: count)
  end

  def spool_files
    Dir.children(dir).grep(/\Alog_ingestion-.*\.spool(\.claimed-\d+)?\z/)
  end

  it "keeps what a refusing service left at exit and reports it in one report" do
    spool(30)

    expect(spool_files.size).to eq(1)
    all = Array.new(reports.size) { reports.pop }
    expect(all.size).to eq(1)
    expect(all.first).to include(kind: "shutdown", entries_lost: 0)
    expect(all.first[:message]).to match(/refused the connection.*30 entries spooled to #{Regexp.escape(dir)}/)
  end

  it "stores a spool delivered twice once (the batches keep their idempotency keys)" do
    spool(30)
    original = File.join(dir, spool_files.first)
    FileUtils.cp(original, File.join(dir, "log_ingestion-1-0000000000000copy.spool"))

    up = client(server.url)
    Polling.wait_until(timeout: 30, what: "the spool to be delivered") { spool_files.empty? }

    expect(up.stats[:recovered]).to eq(60) # both files answered; the copy from the stored records
    expect(server.count(service: service)).to eq(30)
  end

  it "delivers each entry once when two processes recover the same spool directory at once" do
    3.times { |n| spool(20, prefix: "file#{n}") }
    go = File.join(dir, "go")
    script = <<~RUBY
      require "log_ingestion"
      sleep 0.01 until File.exist?(#{go.inspect})
      LogIngestionClient.configure do |c|
        c.api_url = #{server.url.inspect}
        c.api_key = #{server.api_key.inspect}
        c.service = #{service.inspect}
        c.spool_dir = #{dir.inspect}
      end
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
      until Dir.children(#{dir.inspect}).none? { |n| n.start_with?("log_ingestion-") }
        raise "spool not delivered" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        sleep 0.02
      end
      puts LogIngestionClient.stats[:recovered]
    RUBY
    children = Array.new(2) { Thread.new { run_ruby(script) } }
    FileUtils.touch(go)
    results = children.map(&:value)

    results.each { |_out, err, status| expect(status).to be_success, err }
    expect(results.sum { |out, _err, _status| Integer(out) }).to eq(60) # no file delivered by both
    expect(server.count(service: service)).to eq(60)
  end

  it "skips and counts a corrupt spool file without raising, and delivers the others" do
    spool(5)
    File.binwrite(File.join(dir, "log_ingestion-1-corrupt.spool"), "LGISPOOL\x01\x00\x00\x00\xff\xff\xff\xff garbage")

    up = client(server.url)
    up.log("INFO", "after the corrupt file")
    expect(up.flush(timeout: 10)).to be(true)

    Polling.wait_until(timeout: 30, what: "the spool to be read") { up.stats[:spool_skipped] == 1 && spool_files.empty? }
    expect(Dir.children(dir)).to include("log_ingestion-1-corrupt.spool.skipped")
    Polling.wait_until(timeout: 30, what: "6 rows") { server.count(service: service) == 6 }
    seen = []
    Polling.wait_until(timeout: 10, what: "the skipped file's report") do
      seen << reports.pop until reports.empty?
      seen.any? { |r| r[:message].include?("skipped") }
    end
    expect(seen.select { |r| r[:message].include?("skipped") })
      .to contain_exactly(include(kind: "internal", entries_lost: 0, message: /corrupt\.spool skipped \(truncated\)/))
  end

  it "leaves the parent's claims alone in a forked child" do
    spool(5)
    script = <<~RUBY
      require "log_ingestion"
      dir = #{dir.inspect}
      LogIngestionClient.configure do |c|
        c.api_url = #{refused_url.inspect}
        c.api_key = "key"
        c.service = #{service.inspect}
        c.spool_dir = dir
      end
      sleep 0.01 until Dir.children(dir).any? { |n| n.end_with?(".claimed-\#{Process.pid}") }
      child = fork do
        LogIngestionClient.info("from the child") # its own engine, on the same spool directory
        LogIngestionClient.shutdown(timeout: 1)
      end
      Process.wait(child)
      puts Dir.children(dir).sort
    RUBY
    out, err, status = run_ruby(script)

    expect(status).to be_success, err
    names = out.lines.map(&:chomp).grep(/\Alog_ingestion-/)
    # The parent's claim is untouched, and the child spooled its own entry in a file of its own.
    expect(names.grep(/\.claimed-/).size).to eq(1)
    expect(names.grep(/\.spool\z/).size).to eq(1)
    expect(err).to match(/1 entries spooled/)
  end

  it "says in one line how many entries were lost and why when there is no spool" do
    script = <<~RUBY
      require "log_ingestion"
      LogIngestionClient.configure do |c|
        c.api_url = #{refused_url.inspect}
        c.api_key = "key"
        # No batch is due before exit (an earlier attempt would rightly report the outage first).
        c.batch_size = 100
        c.batch_interval = 60
      end
      95.times { |i| LogIngestionClient.info("lost \#{i}") }
    RUBY
    _out, err, status = run_ruby(script)

    expect(status).to be_success
    lines = err.lines.grep(/log_ingestion/)
    expect(lines.size).to eq(1), err
    expect(lines.first).to match(/shutdown: the service was unreachable at exit \(.*refused the connection\); no spool_dir is set \(95 entries lost\)/)
  end
end

RSpec.describe LogIngestion::Configuration, "spool settings" do
  around do |example|
    previous = described_class.default_spool_dir
    described_class.default_spool_dir = nil
    example.run
  ensure
    described_class.default_spool_dir = previous
  end

  it "sends no spool_dir outside Rails unless one is set" do
    expect(described_class.new.to_engine_hash["spool_dir"]).to be_nil
    expect(described_class.new(spool_dir: "tmp/x").to_engine_hash["spool_dir"]).to eq(File.expand_path("tmp/x"))
  end

  it "uses default_spool_dir when spool_dir is nil, and none when it is false" do
    described_class.default_spool_dir = "/srv/app/tmp/log_ingestion/spool"
    expect(described_class.new.to_engine_hash["spool_dir"]).to eq("/srv/app/tmp/log_ingestion/spool")
    expect(described_class.new(spool_dir: false).to_engine_hash["spool_dir"]).to be_nil
  end

  it "refuses a spool_dir that is not a path and a max_spool_bytes out of range" do
    expect { described_class.new(spool_dir: 42).validate! }
      .to raise_error(LogIngestion::ConfigurationError, /spool_dir must be nil, false or a directory path/)
    expect { described_class.new(spool_dir: " ").validate! }.to raise_error(LogIngestion::ConfigurationError)
    expect { described_class.new(max_spool_bytes: -1).validate! }
      .to raise_error(LogIngestion::ConfigurationError, /max_spool_bytes must be an Integer/)
  end
end
