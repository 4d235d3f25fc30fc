# frozen_string_literal: true

# Where a log call's time goes, layer by layer: the p50 of the same call made
# at each layer of the gem -- LogIngestion::Native::Engine#enqueue (with and without
# metadata), EngineDelivery#enqueue, Client#log, Client#log_canonical (what the level methods
# call), LogIngestionClient.info (also inside a request context, and outside one once
# contexts are in use, as in a Rails app) -- over CALLS
# calls each, ROUNDS times, against the real server. A script, not a test. It reaches
# into the client's instance variables to find the inner layers: a benchmark's licence,
# never the gem's API.
#
#   LOG_INGESTION_SERVER_BIN=target/release/log-ingestion-server \
#     ruby spec/benchmarks/caller_layers_benchmark.rb

$LOAD_PATH.unshift(File.expand_path("../../lib", __dir__))
require "log_ingestion"
require "logger"
require_relative "../support/real_ingestion_server"

CALLS = Integer(ENV.fetch("CALLS", "50000"))
ROUNDS = Integer(ENV.fetch("ROUNDS", "3"))
METADATA = { request_id: "req-1", user_id: 1, path: "/orders/1", status: 200, duration_ms: 12.5 }.freeze

def p50(count)
  samples = Array.new(count)
  count.times do |i|
    before = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    yield
    samples[i] = Process.clock_gettime(Process::CLOCK_MONOTONIC) - before
  end
  samples.sort[count / 2] * 1_000_000
end

abort "native extension not built (rake compile)" unless LogIngestion::Native.available?
abort "no server binary (#{RealIngestionServer.unavailable_reason})" unless RealIngestionServer.available?
LogIngestion.logger.level = Logger::ERROR

server = RealIngestionServer::Instance.new.start
begin
  LogIngestionClient.configure do |c|
    c.api_url = server.url
    c.api_key = server.api_key
    c.service = "bench-layers"
    c.max_queue_bytes = 512 * 1024 * 1024
  end
  LogIngestionClient.info("warm-up", METADATA)
  client = LogIngestionClient.client
  delivery = client.instance_variable_get(:@delivery)
  engine = delivery.instance_variable_get(:@engine)
  layers = {
    "clock_gettime alone" => -> {},
    "Native::Engine#enqueue, nil metadata" => -> { engine.enqueue("INFO", "Request handled", nil) },
    "Native::Engine#enqueue" => -> { engine.enqueue("INFO", "Request handled", METADATA) },
    "EngineDelivery#enqueue" => -> { delivery.enqueue("INFO", "Request handled", METADATA) },
    "Client#log" => -> { client.log("INFO", "Request handled", METADATA) },
    "Client#log_canonical" => -> { client.log_canonical("INFO", "Request handled", METADATA) },
    "LogIngestionClient.info" => -> { LogIngestionClient.info("Request handled", METADATA) }
  }
  results = Hash.new { |hash, key| hash[key] = [] }
  ROUNDS.times do
    layers.each { |name, call| results[name] << p50(CALLS, &call) }
    LogIngestionClient.flush(timeout: 300)
  end
  # Then as in a Rails app: once a request context was ever stored, every log call looks
  # for one (LogIngestion::Context.current); inside a request it is merged in. These run
  # after all the rows above, which measure a process that never stored a context.
  info = -> { LogIngestionClient.info("Request handled", METADATA) }
  ROUNDS.times do
    LogIngestion::Context.with(request_id: "req-layers") do
      results["LogIngestionClient.info in a request"] << p50(CALLS, &info)
    end
    results["LogIngestionClient.info, contexts in use"] << p50(CALLS, &info)
    LogIngestionClient.flush(timeout: 300)
  end
  puts "p50 per call (µs), #{CALLS} calls per round, five metadata keys unless said:"
  results.each { |name, values| puts format("  %-42s %s", name, values.map { |v| format("%.2f", v) }.join(" / ")) }
  LogIngestionClient.shutdown(timeout: 60)
ensure
  server.stop
end
