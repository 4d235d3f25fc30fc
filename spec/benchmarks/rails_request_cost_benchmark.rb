# frozen_string_literal: true

# What the Rails glue costs a request, on the request thread: the spec app
# (spec/rails/app, Rails 6.1, its log written to /dev/null at :debug) serves REQUESTS
# requests in-process through its whole middleware stack (Rack::MockRequest, no
# server), and the thread's CPU time (CLOCK_THREAD_CPUTIME_ID) is divided by the count.
# One process per setup and round, setups interleaved, ROUNDS rounds; the median of the
# rounds is printed. Entries are enqueued into the real native engine, as in an app; it
# sends them to a closed local port (refused, dropped, not retried), so no server's
# CPU shares the machine. A script, not a test.
#
#   ruby spec/benchmarks/rails_request_cost_benchmark.rb
#   REQUESTS=5000 ROUNDS=5 PATHS=/widgets/pid,/widgets ruby spec/benchmarks/rails_request_cost_benchmark.rb
#   # before/after: BEFORE_ROOT is a checkout of an older commit (lib/ and spec/, its
#   # native library built or copied in); its setups run interleaved with these:
#   git archive OLD lib spec | tar -x -C /tmp/before && cp lib/log_ingestion/log_ingestion.so /tmp/before/lib/log_ingestion/
#   BEFORE_ROOT=/tmp/before ruby spec/benchmarks/rails_request_cost_benchmark.rb
#
# Setups:
#   no glue   config.log_ingestion.enabled = false (Rails' own logging only)
#   README    README's setup: request and job entries, broadcast_logger from :warn
#   old       the previous README setup: request_logging, every subscriber, broadcast_logger from :info
#   lograge   no glue, Debian's ruby-lograge with its JSON formatter (one line per request, to the log file)
require "open3"
require "rbconfig"
require "tmpdir"

TREES = { "" => File.expand_path("../..", __dir__) }
TREES["before: "] = File.expand_path(ENV["BEFORE_ROOT"]) if ENV["BEFORE_ROOT"]
REQUESTS = Integer(ENV.fetch("REQUESTS", "3000"))
ROUNDS = Integer(ENV.fetch("ROUNDS", "3"))
PATHS = ENV.fetch("PATHS", "/widgets/pid,/widgets").split(",")
SETUPS = {
  "no glue" => "c.enabled = false",
  "README" => "",
  "old" => "c.request_logging = true; c.subscribers = true; c.logger_level = :info",
  "lograge" => 'c.enabled = false; require "lograge"; Rails.application.config.lograge.enabled = true; ' \
               "Rails.application.config.lograge.formatter = Lograge::Formatters::Json.new"
}.freeze

CHILD = <<~'RUBY'
  require "./spec/rails/app/config/application"
  c = Rails.application.config.log_ingestion
  c.max_retries = 0
  c.on_error = ->(_report) {}
  eval(ENV.fetch("BENCH_SETUP"))
  require "./spec/rails/app/config/environment"
  require "rack/mock"
  session = Rack::MockRequest.new(Rails.application)
  path = ENV.fetch("BENCH_PATH")
  count = Integer(ENV.fetch("BENCH_REQUESTS"))
  run = ->(n) { n.times { session.get(path, "REMOTE_ADDR" => "127.0.0.1") } } # as Puma sets it
  run.call(500) # warm-up
  GC.start
  before = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
  run.call(count)
  elapsed = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID) - before
  enqueued = LogIngestionClient.stats[:enqueued]
  session.get(path, "REMOTE_ADDR" => "127.0.0.1")
  entries = LogIngestionClient.stats[:enqueued] - enqueued
  print "#{(elapsed / count * 1_000_000).round(1)} #{entries}"
RUBY

Dir.mktmpdir("li-rails-bench") do |dir|
  results = Hash.new { |hash, key| hash[key] = [] }
  entries = {}
  runs = PATHS.product(TREES.to_a, SETUPS.to_a)
  ROUNDS.times do
    runs.each do |path, (tree, root), (setup_name, setup)|
      name = "#{tree}#{setup_name}"
      env = { "RAILS_ENV" => "test", "LOG_INGESTION_URL" => "http://127.0.0.1:9", "LOG_INGESTION_API_KEY" => "bench",
              "LOG_INGESTION_TEST_MODE" => nil,
              "LOG_INGESTION_TEST_LOG" => File::NULL, "LOG_INGESTION_TEST_DB" => File.join(dir, "bench.sqlite3"),
              "BENCH_SETUP" => setup, "BENCH_PATH" => path, "BENCH_REQUESTS" => REQUESTS.to_s }
      out, err, status = Open3.capture3(env, RbConfig.ruby, "-Ilib", "-e", CHILD, chdir: root)
      abort "#{name} #{path} failed:\n#{err}" unless status.success?
      micros, count = out.split
      results[[path, name]] << Float(micros)
      entries[[path, name]] = Integer(count)
    end
  end
  puts "request thread CPU per request (µs; median of #{ROUNDS} rounds of #{REQUESTS}), entries per request:"
  PATHS.each do |path|
    TREES.each_key do |tree|
      base = results[[path, "#{tree}no glue"]].sort[ROUNDS / 2]
      SETUPS.each_key do |setup_name|
        name = "#{tree}#{setup_name}"
        values = results[[path, name]]
        median = values.sort[ROUNDS / 2]
        puts format("  GET %-14s %-16s %7.1f  (%+6.1f)  entries %d   rounds: %s", path, name, median, median - base,
                    entries[[path, name]], values.map { |v| format("%.1f", v) }.join(" / "))
      end
    end
  end
end
