# frozen_string_literal: true

require "spec_helper"
require "fileutils"
require "tmpdir"

RSpec.describe "test mode" do
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

  it "works without the native extension" do
    Dir.mktmpdir do |dir|
      lib = File.expand_path("../../lib", __dir__)
      FileUtils.cp_r(Dir[File.join(lib, "*")], dir)
      FileUtils.rm_f(Dir[File.join(dir, "**", "*.so")])
      script = <<~RUBY
        require "log_ingestion"
        LogIngestionClient.test_mode!
        LogIngestionClient.info("no native", { ok: true })
        puts LogIngestionClient.recorded_entries.map { |e| e[:message] }.inspect
        puts defined?(LogIngestion::Native::Engine).inspect
      RUBY
      out, err, status = Open3.capture3(RbConfig.ruby, "-I", dir, "-e", script)
      expect(status).to be_success, err
      expect(out.lines.map(&:chomp)).to eq(['["no native"]', "nil"])
    end
  end
end
