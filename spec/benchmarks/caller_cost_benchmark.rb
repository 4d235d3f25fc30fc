# frozen_string_literal: true

# The gem alone: the caller's cost of `LogIngestionClient.info` with five
# metadata keys, and the entries per second one Ruby process delivers through the gem
# to the real server (until the server has committed them). A script, not a test: it
# prints figures; the targets are judged by whoever reads them.
#
#   LOG_INGESTION_SERVER_BIN=target/release/log-ingestion-server \
#     ruby spec/benchmarks/caller_cost_benchmark.rb
#   ENTRIES=200000 ROUNDS=5 ruby spec/benchmarks/caller_cost_benchmark.rb
#
# Caller cost: each call timed on the calling thread with Process.clock_gettime, after
# WARMUP calls, in ROUNDS rounds of ENTRIES calls each (p50/p99 per round and over all;
# the delivery threads run meanwhile, as in an app), then one more round inside a request
# context (LogIngestion::Context), printed apart. Delivered throughput: the last
# round's entries from its first call until the server has stored all of them. Compare
# it with the server's load generator at the gem's batch size (one connection, like the
# gem's one batch in flight):
#
#   BENCH_BATCH_SIZES=512 BENCH_CONNECTIONS=1 BENCH_FLEET=off BENCH_PAIRS=1 \
#     cargo bench -p log_ingestion_server --bench ingest_load

$LOAD_PATH.unshift(File.expand_path("../../lib", __dir__))
require "log_ingestion"
require "logger"
require_relative "../support/real_ingestion_server"

ENTRIES = Integer(ENV.fetch("ENTRIES", "100000"))
ROUNDS = Integer(ENV.fetch("ROUNDS", "3"))
WARMUP = Integer(ENV.fetch("WARMUP", "10000"))
BATCH_SIZE = Integer(ENV.fetch("BATCH_SIZE", LogIngestion::Configuration::DEFAULTS[:batch_size].to_s))

def metadata(index)
  { request_id: "req-#{index}", user_id: index, path: "/orders/#{index}", status: 200, duration_ms: 12.5 }
end

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def percentiles(samples)
  sorted = samples.sort
  pick = ->(q) { sorted[[(sorted.size * q).ceil - 1, 0].max] }
  { p50: pick.call(0.50), p99: pick.call(0.99), max: sorted.last }
end

# The metadata Hashes are built before timing, so only the call is measured.
def timed_calls(count, offset)
  inputs = Array.new(count) { |i| metadata(offset + i) }
  samples = Array.new(count)
  count.times do |i|
    argument = inputs[i]
    before = now
    LogIngestionClient.info("Request handled", argument)
    samples[i] = (now - before) * 1_000_000
  end
  samples
end

abort "native extension not built (rake compile)" unless LogIngestion::Native.available?
abort "no server binary (#{RealIngestionServer.unavailable_reason})" unless RealIngestionServer.available?
LogIngestion.logger.level = Logger::ERROR

puts "server: #{RealIngestionServer.binary}"
puts "entries per round: #{ENTRIES}, rounds: #{ROUNDS}, warm-up: #{WARMUP}, batch_size: #{BATCH_SIZE}"
server = RealIngestionServer::Instance.new.start
begin
  LogIngestionClient.configure do |c|
    c.api_url = server.url
    c.api_key = server.api_key
    c.service = "bench-caller"
    c.batch_size = BATCH_SIZE
    c.max_queue_bytes = 512 * 1024 * 1024
  end
  timed_calls(WARMUP, 0)
  LogIngestionClient.flush(timeout: 300)
  stored = server.wait_for_count(service: "bench-caller", count: WARMUP, timeout: 300)

  all = []
  rate = nil
  ROUNDS.times do |round|
    started = now
    samples = timed_calls(ENTRIES, stored)
    LogIngestionClient.flush(timeout: 300)
    stored = server.wait_for_count(service: "bench-caller", count: stored + ENTRIES, timeout: 300)
    rate = ENTRIES / (now - started)
    cost = percentiles(samples)
    all.concat(samples)
    puts format("round %d: caller p50 %.2f µs, p99 %.2f µs, max %.0f µs; delivered %.0f entries/s",
                round + 1, cost[:p50], cost[:p99], cost[:max], rate)
  end
  cost = percentiles(all)
  # Once more inside a request context (its request_id merged into every entry's
  # metadata, as in a Rails request): not part of the figures above, which are of a
  # process that never opened one.
  in_request = LogIngestion::Context.with(request_id: "req-bench") { percentiles(timed_calls(ENTRIES, stored)) }
  LogIngestionClient.flush(timeout: 300)
  stored = server.wait_for_count(service: "bench-caller", count: stored + ENTRIES, timeout: 300)
  stats = LogIngestionClient.stats
  LogIngestionClient.shutdown(timeout: 5)
  puts format("all rounds: caller p50 %.2f µs, p99 %.2f µs, max %.0f µs (target p50 <= 2 µs)",
              cost[:p50], cost[:p99], cost[:max])
  puts format("in a request context (one round): caller p50 %.2f µs, p99 %.2f µs, max %.0f µs",
              in_request[:p50], in_request[:p99], in_request[:max])
  puts "stored #{stored}, sent #{stats[:sent]}, dropped_queue_full #{stats[:dropped_queue_full]}"
ensure
  server.stop
end
