# frozen_string_literal: true

# What the spool costs at exit and how fast the next process delivers it. A script,
# not a test: it prints figures.
#
#   ruby spec/benchmarks/spool_benchmark.rb            # needs `rake compile` and the server binary
#   ENTRIES=2706,50000 ruby spec/benchmarks/spool_benchmark.rb
#
# For each count: a client logs that many entries (~300 bytes of JSON each) to a URL
# that refuses connections, then `shutdown` (what at_exit does) writes them to the
# spool -- timed. Then a client configured for the real server (a fresh database)
# recovers every file -- timed until the directory is empty -- and the rows are counted.

$LOAD_PATH.unshift(File.expand_path("../../lib", __dir__))
require "log_ingestion"
require "tmpdir"
require "fileutils"
require_relative "../support/real_ingestion_server"

counts = ENV.fetch("ENTRIES", "2706,50000").split(",").map { |n| Integer(n) }
dir = Dir.mktmpdir("li-spool-bench")
server = RealIngestionServer::Instance.new.start
clock = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
begin
  counts.each do |count|
    client = LogIngestion::Client.new.configure(LogIngestion::Configuration.new(
      api_url: "http://127.0.0.1:#{RealIngestionServer.free_port}", api_key: "k", service: "spool-bench",
      spool_dir: dir, max_queue_bytes: 256 * 1024 * 1024, on_error: ->(_report) {}
    ))
    count.times { |i| client.log("INFO", "request #{i} #{'x' * 200}", { request_id: "r#{i}", path: "/orders/#{i}" }) }
    started = clock.call
    report = client.shutdown(timeout: 5)
    bytes = Dir.children(dir).sum { |name| File.size(File.join(dir, name)) }
    puts format("%<n>7d entries: shutdown %<s>.3f s, spooled %<spooled>d, spool %<kb>d KB",
                n: count, s: clock.call - started, spooled: report[:spooled], kb: bytes / 1024)
  end

  started = clock.call
  client = LogIngestion::Client.new.configure(LogIngestion::Configuration.new(
    api_url: server.url, api_key: server.api_key, service: "spool-bench", spool_dir: dir
  ))
  Polling.wait_until(timeout: 600, interval: 0.02, what: "the spool to be delivered") do
    Dir.children(dir).none? { |name| name.start_with?("log_ingestion-") }
  end
  elapsed = clock.call - started
  puts format("recovered %<n>d entries in %<s>.2f s; rows stored: %<rows>d",
              n: client.stats[:recovered], s: elapsed, rows: server.count(service: "spool-bench"))
  client.shutdown(timeout: 5)
ensure
  server.stop
  FileUtils.remove_entry(dir)
end
