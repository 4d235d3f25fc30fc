# frozen_string_literal: true

# What the Rails glue costs a request on the request thread, measured A/B in one
# process so that the machine's load cancels out: the spec app (spec/rails/app, Rails
# 6.1, its log written to /dev/null at :debug) serves requests in-process through its
# whole middleware stack (Rack::MockRequest with REMOTE_ADDR, as Puma sets it), in
# alternating batches of BATCH requests:
#
#   no glue  the same app without the gem's middlewares, subscriptions and logger
#            forwarder (Rails.logger swapped for a plain tagged logger on the same device),
#            with Rails' own request lines (Started, Processing, Completed, ...)
#   glue     the app as the checkout's spec app configures it: README's setup (the
#            Rails log's one line per request instead of Rails' request lines)
#
# for ROUNDS rounds (the order swapped every round); the thread's CPU time
# (CLOCK_THREAD_CPUTIME_ID) per request is taken per batch and the medians printed, with
# the Ruby objects allocated and the entries one request sends. On a loaded machine the
# CPU medians still move by tens of µs between runs: run it twice, and trust the
# allocations, which do not move. Entries
# go into the real native engine, which sends them to a closed local port (refused,
# dropped, not retried), so no server's CPU shares the machine. A script, not a test.
#
#   ruby spec/benchmarks/rails_request_cost_benchmark.rb
#   ROUNDS=30 BATCH=200 PATHS=/widgets/pid,/widgets ruby spec/benchmarks/rails_request_cost_benchmark.rb
#   # another commit's glue (its README setup), for before/after:
#   git archive OLD lib spec | tar -x -C /tmp/before && cp lib/log_ingestion/log_ingestion.so /tmp/before/lib/log_ingestion/
#   (cd /tmp/before && ruby $OLDPWD/spec/benchmarks/rails_request_cost_benchmark.rb)
#
# It runs the spec app of the current directory's checkout (lib/ and spec/rails/app).
ENV["RAILS_ENV"] = "test"
ENV["LOG_INGESTION_URL"] = "http://127.0.0.1:9"
ENV["LOG_INGESTION_API_KEY"] = "bench"
ENV.delete("LOG_INGESTION_TEST_MODE")
ENV["LOG_INGESTION_TEST_LOG"] = File::NULL
require "tmpdir"
ENV["LOG_INGESTION_TEST_DB"] = File.join(Dir.tmpdir, "li-rails-cost-#{Process.pid}.sqlite3")
$LOAD_PATH.unshift(File.expand_path("lib"))

require File.expand_path("spec/rails/app/config/application")
options = Rails.application.config.log_ingestion
options.max_retries = 0
options.on_error = ->(_report) {}
require File.expand_path("spec/rails/app/config/environment")
require "rack/mock"

ROUNDS = Integer(ENV.fetch("ROUNDS", "20"))
BATCH = Integer(ENV.fetch("BATCH", "200"))
PATHS = ENV.fetch("PATHS", "/widgets/pid,/widgets").split(",")
GLUE_MIDDLEWARES = %w[LogIngestion::RequestContext LogIngestion::RequestLogging].freeze

stack = Rails.application.middleware.dup
GLUE_MIDDLEWARES.each { |name| stack.delete(Object.const_get(name)) if stack.map(&:name).include?(name) }
bare_stack = stack.build(Rails.application.routes)
bare_app = lambda do |env|
  Rails.application.send(:build_request, env) # what Rails.application.call does first
  bare_stack.call(env)
end
glue_logger = Rails.logger
plain_logger = ActiveSupport::TaggedLogging.new(ActiveSupport::Logger.new(LogIngestionTestApp.log_output)) # the same device
plain_logger.level = glue_logger.level
logged_classes = [ActionController::Base, ActiveRecord::Base, ActionView::Base, ActiveJob::Base]
subscribed = LogIngestion::Subscribers.subscribed
entries_on = defined?(LogIngestion::RequestEntries) && LogIngestion::RequestEntries.subscribed?
lines_replaced = defined?(LogIngestion::RequestLines) && LogIngestion::RequestLines.replacing?

use_logger = lambda do |logger|
  Rails.logger = logger
  logged_classes.each { |klass| klass.logger = logger }
end
modes = {
  "no glue" => lambda do
    use_logger.call(plain_logger)
    LogIngestion::Subscribers.unsubscribe
    LogIngestion::RequestEntries.unsubscribe if entries_on
    LogIngestion::RequestLines.keep if lines_replaced # its RackLogger is Rails::Rack::Logger then
    Rack::MockRequest.new(bare_app)
  end,
  "glue" => lambda do
    use_logger.call(glue_logger)
    LogIngestion::Subscribers.subscribe(only: subscribed) unless subscribed.empty?
    LogIngestion::RequestEntries.subscribe if entries_on
    LogIngestion::RequestLines.replace if lines_replaced
    Rack::MockRequest.new(Rails.application)
  end
}

def cpu_now
  Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
end

puts "#{Dir.pwd}: request thread CPU per request (µs), median of #{ROUNDS} alternating batches of #{BATCH}"
PATHS.each do |path|
  samples = Hash.new { |hash, key| hash[key] = [] }
  sent = {}
  modes.each_value { |mode| session = mode.call; 300.times { session.get(path, "REMOTE_ADDR" => "127.0.0.1") } }
  allocated = Hash.new(0)
  ROUNDS.times do |round|
    (round.even? ? modes.to_a : modes.to_a.reverse).each do |name, mode| # neither always runs first
      session = mode.call
      objects = GC.stat(:total_allocated_objects)
      before = cpu_now
      BATCH.times { session.get(path, "REMOTE_ADDR" => "127.0.0.1") }
      samples[name] << (cpu_now - before) / BATCH * 1_000_000
      allocated[name] += GC.stat(:total_allocated_objects) - objects
      enqueued = LogIngestionClient.stats[:enqueued]
      session.get(path, "REMOTE_ADDR" => "127.0.0.1")
      sent[name] = LogIngestionClient.stats[:enqueued] - enqueued
    end
  end
  medians = samples.transform_values { |values| values.sort[values.size / 2] }
  per_request = allocated.transform_values { |count| count.fdiv(ROUNDS * BATCH) }
  medians.each do |name, median|
    puts format("  GET %-14s %-8s %7.1f µs (%+6.1f)  %6.0f objects (%+4.0f)  entries per request: %d", path, name,
                median, median - medians["no glue"], per_request[name], per_request[name] - per_request["no glue"],
                sent[name])
  end
end
File.delete(ENV["LOG_INGESTION_TEST_DB"]) if File.exist?(ENV["LOG_INGESTION_TEST_DB"])
