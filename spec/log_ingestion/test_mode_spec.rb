# frozen_string_literal: true

require "spec_helper"
require "fileutils"
require "tmpdir"

RSpec.describe "test mode", :native do
  let(:client) { LogIngestion::Client.new }

  before { client.configure(LogIngestion::Configuration.new(test_mode: true, service: "spec")) }

  it "records entries with symbol keys, a UTC microsecond timestamp and serialised metadata" do
    client.log(:warning, "disk low", { free: 3, at: Time.utc(2024, 1, 1) })
    entry = client.recorded_entries.last
    expect(entry).to include(service: "spec", level: "WARNING", message: "disk low",
                             metadata: { "free" => 3, "at" => "2024-01-01T00:00:00.000000Z" })
    expect(entry[:timestamp]).to match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\z/)
  end

  it "clears recorded entries" do
    client.log("INFO", "one")
    client.clear_recorded_entries
    expect(client.recorded_entries).to be_empty
  end

  it "answers flush, send_log and stats without a server" do
    expect(client.flush).to be(true)
    expect(client.send_log({ level: "INFO", message: "direct" })).to eq("accepted" => 1)
    expect(client.stats).to include(enqueued: 1, dropped_queue_full: 0)
  end

  it "records what delivery would send: a message over 64 KiB is cut as the native converter cuts it" do
    client.log("INFO", "ü" * 40_000)
    client.send_log({ message: "x" * 70_000, timestamp: Time.utc(2024, 1, 1) })
    logged, sent = client.recorded_entries.last(2)
    expect(logged[:message]).to eq(JSON.parse(LogIngestion::Native.entry_json({ message: "ü" * 40_000 }, "spec"))["message"])
    expect(logged[:message].bytesize).to be <= 64 * 1024
    expect(sent[:message]).to end_with("...[truncated]")
    expect(sent).to include(service: "spec", level: "INFO", timestamp: "2024-01-01T00:00:00.000000Z")
  end

  it "starts no engine and no thread" do
    engines = -> { ObjectSpace.each_object(LogIngestion::Native::Engine).count }
    GC.disable # engines of earlier specs are not collected meanwhile: the count only rises if one starts
    threads = Thread.list.size
    before = engines.call
    configured = LogIngestion::Client.new.configure(LogIngestion::Configuration.new(test_mode: true))
    configured.log("INFO", "one")
    configured.flush
    expect(Thread.list.size).to eq(threads)
    expect(engines.call).to eq(before)
  ensure
    GC.enable
  end

  it "needs the native extension: configure says so with NativeLoadError" do
    Dir.mktmpdir do |dir|
      lib = File.expand_path("../../lib", __dir__)
      FileUtils.cp_r(Dir[File.join(lib, "*")], dir)
      FileUtils.rm_f(Dir[File.join(dir, "**", "*.so")])
      script = <<~RUBY
        require "log_ingestion"
        begin
          LogIngestionClient.test_mode!
        rescue LogIngestion::NativeLoadError => e
          puts e.message[/no native extension/]
        end
      RUBY
      out, err, status = Open3.capture3(RbConfig.ruby, "-I", dir, "-e", script)
      expect(status).to be_success, err
      expect(out.chomp).to eq("no native extension")
    end
  end
end
