# frozen_string_literal: true

# Caller cost and delivered throughput of LogIngestionClient (this gem) side by side
# with the guide's pure-Ruby client, against the real server, then against a server
# that answers after 50 ms. A script, not a test: it prints figures.
#
#   ruby spec/benchmarks/client_benchmark.rb            # needs `rake compile` and the server binary
#   ENTRIES=100000 GUIDE_ENTRIES=10000 ruby spec/benchmarks/client_benchmark.rb
#
# The guide's client is read at run time from the seed guide (spec/support/guide_path.rb:
# LOG_INGESTION_GUIDE, else ../shared/seed/ beside the repository): the ```ruby block holding `class LogIngestionClient` is evaluated under a
# new name inside GuideSandbox, whose Rails, Time and String stand-ins give it the few
# Rails bits it uses (Rails.logger, Rails.application.credentials, Time.current,
# String#present?). Nothing of it is copied into this repository.
#
# Caller cost: wall time of each `info` call with five metadata keys, on the calling
# thread. Delivered throughput: entries per second from the first call until the
# server has acknowledged (committed) all of them.

$LOAD_PATH.unshift(File.expand_path("../../lib", __dir__))
require "log_ingestion"
require "logger"
require "json"
require "open3"
require "rbconfig"
require "time"
require_relative "../support/real_ingestion_server"
require_relative "../support/guide_path"

GUIDE_PATH = GuidePath.path
ENTRIES = Integer(ENV.fetch("ENTRIES", "100000"))
GUIDE_ENTRIES = Integer(ENV.fetch("GUIDE_ENTRIES", "10000"))
SLOW_ENTRIES = Integer(ENV.fetch("SLOW_ENTRIES", "2000"))

# The stand-ins the guide's class needs, as constants of its own namespace (so nothing
# global is patched).
module GuideSandbox
  # Rails.logger and Rails.application.credentials for the guide's class.
  module Rails
    Credentials = Struct.new(:values) do
      def dig(*keys)
        values.dig(*keys)
      end
    end
    Application = Struct.new(:credentials)

    def self.logger
      @logger ||= Logger.new($stderr, level: Logger::WARN)
    end

    def self.application
      @application ||= Application.new(Credentials.new({}))
    end
  end

  # Time.current for the guide's class.
  class Time < ::Time
    def self.current
      now
    end
  end

  # String#present? for the guide's settings, on a String subclass.
  class PresentString < String
    def present?
      !strip.empty?
    end
  end

  def self.load_guide_client(url, api_key)
    markdown = File.read(GUIDE_PATH)
    blocks = markdown.scan(/```ruby\n(.*?)```/m).map(&:first)
    source = blocks.find { |block| block.include?("class LogIngestionClient") } or
      abort "no ```ruby block with class LogIngestionClient in #{GUIDE_PATH}"
    source = source.sub("class LogIngestionClient", "class GuideLogIngestionClient")
    ENV["LOG_INGESTION_URL"] = url
    ENV["LOG_INGESTION_API_KEY"] = api_key
    ENV["LOG_INGESTION_SERVICE"] = "guide-client"
    module_eval(source, "#{GUIDE_PATH}(LogIngestionClient)")
    client = const_get(:GuideLogIngestionClient)
    client.api_url = PresentString.new(url)
    client.api_key = PresentString.new(api_key)
    client
  end
end

# A server that answers every request after 50 ms, in its own process (so its Ruby
# threads do not compete with the measured caller for the GVL).
module SlowServer
  SCRIPT = <<~RUBY
    require_relative #{File.expand_path('../support/fake_ingestion_server', __dir__).inspect}
    server = FakeIngestionServer.start(api_key: nil)
    server.respond_with { |request| sleep 0.05; server.accepted(request) }
    $stdout.puts server.url
    $stdout.flush
    $stdin.read
    $stdout.puts server.entries.size
  RUBY

  def self.start
    stdin, stdout, wait = Open3.popen2(RbConfig.ruby, "-e", SCRIPT)
    url = stdout.gets.strip
    [url, stdin, stdout, wait]
  end
end

def metadata(index)
  { request_id: "req-#{index}", user_id: index, path: "/orders/#{index}", status: 200, duration_ms: 12.5 }
end

def percentiles(samples)
  sorted = samples.sort
  pick = ->(q) { sorted[[(sorted.size * q).ceil - 1, 0].max] }
  { p50: pick.call(0.50), p99: pick.call(0.99), max: sorted.last }
end

def now
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

# Calls +log+ count times, timing each call; returns [caller percentiles (µs), seconds].
def drive(count)
  samples = Array.new(count)
  started = now
  count.times do |i|
    before = now
    yield i
    samples[i] = (now - before) * 1_000_000
  end
  [percentiles(samples), now - started]
end

def measure_gem(url, api_key, service, count, server: nil)
  LogIngestionClient.configure do |c|
    c.api_url = url
    c.api_key = api_key
    c.service = service
    c.max_queue_bytes = 256 * 1024 * 1024
  end
  started = now
  cost, = drive(count) { |i| LogIngestionClient.info("Request handled", metadata(i)) }
  LogIngestionClient.flush(timeout: 300)
  stored = server ? server.wait_for_count(service: service, count: count, timeout: 300) : count
  elapsed = now - started
  stats = LogIngestionClient.stats
  LogIngestionClient.shutdown(timeout: 5)
  { cost: cost, rate: stored / elapsed, delivered: stats[:sent], dropped: stats[:dropped_queue_full] }
end

def measure_guide(client, count, server: nil)
  started = now
  cost, = drive(count) { |i| client.info("Request handled", metadata(i)) }
  client.flush until client.instance_variable_get(:@queue).empty?
  stored = server ? server.wait_for_count(service: "guide-client", count: count, timeout: 300) : count
  elapsed = now - started
  { cost: cost, rate: stored / elapsed }
end

def row(name, result)
  cost = result[:cost]
  format("%-34s %10.1f %10.1f %10.1f %14.0f", name, cost[:p50], cost[:p99], cost[:max], result[:rate])
end

abort "native extension not built (rake compile)" unless LogIngestion::Native.available?
abort "no server binary (#{RealIngestionServer.unavailable_reason})" unless RealIngestionServer.available?
LogIngestion.logger.level = Logger::ERROR

puts "server: #{RealIngestionServer.binary}"
server = RealIngestionServer::Instance.new.start
results = {}
begin
  results[:gem] = measure_gem(server.url, server.api_key, "bench-gem", ENTRIES, server: server)
  guide = GuideSandbox.load_guide_client(server.url, server.api_key)
  results[:guide] = measure_guide(guide, GUIDE_ENTRIES, server: server)
ensure
  server.stop
end

slow_url, slow_in, slow_out, slow_wait = SlowServer.start
begin
  results[:gem_slow] = measure_gem(slow_url, "any", "bench-gem-slow", SLOW_ENTRIES)
  guide.api_url = GuideSandbox::PresentString.new(slow_url)
  results[:guide_slow] = measure_guide(guide, [SLOW_ENTRIES, 1000].min)
ensure
  slow_in.close
  slow_wait.join(10)
  slow_out.close
end

puts
puts format("%-34s %10s %10s %10s %14s", "client (caller cost in µs)", "p50", "p99", "max", "entries/s")
puts row("gem, real server (#{ENTRIES})", results[:gem])
puts row("guide, real server (#{GUIDE_ENTRIES})", results[:guide])
puts row("gem, 50 ms server (#{SLOW_ENTRIES})", results[:gem_slow])
puts row("guide, 50 ms server (#{[SLOW_ENTRIES, 1000].min})", results[:guide_slow])
puts
p99_ratio = results[:guide][:cost][:p99] / results[:gem][:cost][:p99]
rate_ratio = results[:gem][:rate] / results[:guide][:rate]
slow_ratio = results[:gem_slow][:cost][:p99] / results[:gem][:cost][:p99]
puts format("p99 caller cost: guide / gem = %.1fx (target >= 20x)", p99_ratio)
puts format("delivered throughput: gem / guide = %.1fx (target >= 10x)", rate_ratio)
puts format("gem p99 caller cost, 50 ms server / real server = %.2fx (target ~1x)", slow_ratio)
puts "gem delivered #{results[:gem][:delivered]} entries, dropped #{results[:gem][:dropped]}"
