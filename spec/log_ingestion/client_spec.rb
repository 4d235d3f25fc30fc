# frozen_string_literal: true

require "spec_helper"
require "stringio"
require "timeout"

RSpec.describe LogIngestion::Client, :native do
  let(:server) { FakeIngestionServer.start }
  let(:reports) { Queue.new }
  # An outage's own two reports (kinds "outage" and "recovered"), apart from the failures.
  let(:outage_reports) { Queue.new }
  let(:clients) { [] }

  after do
    clients.each { |client| client.shutdown(timeout: 0.2) }
    server.stop
  end

  def client_for(url = server.url, **settings)
    handler = lambda do |report|
      queue = %w[outage recovered].include?(report[:kind]) ? outage_reports : reports
      queue << report.merge(thread: Thread.current)
    end
    configuration = LogIngestion::Configuration.new(
      api_url: url, api_key: "test-key", service: "client-spec", batch_interval: 0.05,
      retry_delay: 0.01, max_retry_delay: 0.05, on_error: handler, **settings
    )
    LogIngestion::Client.new.configure(configuration).tap { |client| clients << client }
  end

  def next_report(timeout: 10)
    Timeout.timeout(timeout) { reports.pop }
  end

  def closed_port_url
    socket = TCPServer.new("127.0.0.1", 0)
    port = socket.addr[1]
    socket.close
    "http://127.0.0.1:#{port}"
  end

  describe "log calls" do
    # Timed loosely (the target is microseconds per call; spec/benchmarks measures it):
    # a call that waited for the network would wait out the hanging request (read_timeout 10 s).
    it "never wait for the network: 200 calls return while a batch hangs in flight (asserted < 2 s)" do
      server.respond_with { :hang }
      client = client_for(batch_size: 1)
      expect(client.log("INFO", "first")).to be(true)
      server.wait_until(10) { client.stats[:batches_in_flight] == 1 && server.requests.size == 1 }
      expect(server.requests.size).to eq(1)

      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      taken = Array.new(200) { |i| client.log("INFO", "not waiting #{i}", { a: i }) }
      elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      puts format("\n      200 log calls with a batch in flight: %.1f ms", elapsed * 1000) if ENV["LOG_INGESTION_BENCH"]

      expect(taken).to all(be(true))
      expect(elapsed).to be < 2.0
      # Still the one hanging request, still in flight: the calls did not wait for it.
      expect(server.requests.size).to eq(1)
      expect(client.stats).to include(batches_in_flight: 1, sent: 0, enqueued: 201)
    end

    it "never raise when delivery fails, and report the failure through on_error" do
      client = client_for(closed_port_url, max_retries: 1, max_retry_elapsed: 0.2) # refused: retried for 0.2 s
      expect { 3.times { |i| client.log("ERROR", "lost #{i}") } }.not_to raise_error
      expect(next_report[:kind]).to eq("retries_exhausted")
    end

    it "never raise when a lazily started engine fails to start: reported once through on_error, counted, retried after the next setting change" do
      client = client_for
      client.update_setting(:batch_size, 2) # the next call starts a new engine
      allow(LogIngestion::Native::Engine).to receive(:new).and_raise(LogIngestion::Error, "engine refused")

      expect(Array.new(3) { |i| client.log("INFO", "lost #{i}") }).to eq([false, false, false])
      expect(client.flush(timeout: 1)).to be(true)
      expect(LogIngestion::Native::Engine).to have_received(:new).once
      expect(reports.size).to eq(1)
      expect(next_report).to include(kind: "internal", message: a_string_including("engine_start", "engine refused"))
      expect(client.stats).to include(dropped_internal: 3, last_error: a_string_including("engine refused"))

      allow(LogIngestion::Native::Engine).to receive(:new).and_call_original
      client.update_setting(:batch_size, 3)
      expect(client.log("INFO", "delivered")).to be(true)
      expect(client.flush(timeout: 10)).to be(true)
      expect(server.messages).to eq(["delivered"])
    end

    it "never raise when the native library cannot be loaded on a lazy start (a LoadError): reported once, counted" do
      client = client_for
      client.update_setting(:batch_size, 2) # the next call starts a new engine
      allow(LogIngestion::Native).to receive(:load!).and_raise(LogIngestion::NativeLoadError, "no native extension")

      expect(Array.new(2) { |i| client.log("INFO", "lost #{i}") }).to eq([false, false])
      expect(reports.size).to eq(1)
      expect(next_report).to include(kind: "internal", message: a_string_including("engine_start", "no native extension"))
      expect(client.stats).to include(dropped_internal: 2)
    end

    it "never raise when converting an entry fails: reported once through on_error" do
      client = client_for
      unprintable = Class.new { def to_s = raise(NoMethodError, "no to_s for you") }.new

      expect(2.times.map { client.log("INFO", unprintable) }).to eq([false, false])
      expect(next_report).to include(kind: "internal", message: a_string_including("enqueue", "no to_s for you"))
      expect(client.log("INFO", "still works")).to be(true)
    end

    it "never swallow the host's interrupts (Timeout's, rack-timeout's) while converting an entry" do
      client = client_for
      interrupted = Class.new { def to_s = raise(Timeout::Error, "request timed out") }.new

      expect { client.log("INFO", interrupted) }.to raise_error(Timeout::Error, "request timed out")
    end

    it "raise ArgumentError for an unknown level" do
      expect { client_for.log("VERBOSE", "x") }.to raise_error(ArgumentError, /DEBUG, INFO/)
    end

    it "take a canonical level as it is through log_canonical (the level methods' path); any other is not taken, reported, never raised" do
      client = client_for
      expect(client.log_canonical("WARNING", "canonical", { n: 1 })).to be(true)
      expect(client.log_canonical("VERBOSE", "not a level")).to be(false)
      expect(next_report).to include(kind: "internal", message: a_string_including("enqueue", "VERBOSE"))
      client.flush(timeout: 5)
      expect(server.entries.map { |e| [e["level"], e["message"], e["metadata"]] })
        .to eq([["WARNING", "canonical", { "n" => 1 }]])
    end

    # A log call writes its entry in one buffer (ext/log_ingestion/src/entry.rs,
    # encoded_call); test mode's entry_json goes through an owned Entry. The same bytes.
    it "send each log call's entry byte for byte as test mode's converter writes it (every metadata case, a cut message)" do
      client = client_for(gzip: false, batch_size: 1000, batch_interval: 30)
      calls = MetadataCases::CASES.map { |description, input, _expected| ["INFO", description, input] }
      calls << ["ERROR", "ü" * 40_000, { "n" => 1 }] << ["DEBUG", "no metadata", nil] << ["WARN", "", "not a Hash"]
      calls.each { |level, message, metadata| expect(client.log_canonical(level, message, metadata)).to be(true) }
      expect(client.flush(timeout: 10)).to be(true)
      batches = server.requests.select { |request| request.path.end_with?("/batch") }
      expect(batches.size).to eq(1)
      timestamps = batches.first.entries.map { |entry| entry["timestamp"] }
      expected = calls.zip(timestamps).map do |(level, message, metadata), timestamp|
        LogIngestion::Native.entry_json({ timestamp: timestamp, level: level, message: message, metadata: metadata },
                                        "client-spec")
      end
      expect(batches.first.body).to eq("{\"logs\":[#{expected.join(',')}]}")
    end

    it "accept levels as symbols in any case" do
      client = client_for
      client.log(:critical, "c")
      client.log("warning", "w")
      client.flush(timeout: 5)
      expect(server.entries.map { |e| e["level"] }).to eq(%w[CRITICAL WARNING])
    end

    it "take the timestamp at the call, in UTC with microseconds" do
      client = client_for(batch_interval: 30)
      before_call = Time.now.utc
      client.log("INFO", "stamped")
      after_call = Time.now.utc
      sleep 0.2 # a gap between the call and the delivery (not a synchronisation)
      client.flush(timeout: 5)
      stamp = server.entries.first["timestamp"]
      expect(stamp).to match(/\.\d{6}Z\z/)
      expect(Time.iso8601(stamp)).to be_between(before_call.floor(6), after_call)
    end

    it "carry the configured service and the serialised metadata" do
      client = client_for
      client.log("INFO", "shaped", { at: Time.utc(2024, 5, 6), user: :admin })
      client.flush(timeout: 5)
      expect(server.entries.first).to include(
        "service" => "client-spec", "message" => "shaped",
        "metadata" => { "at" => "2024-05-06T00:00:00.000000Z", "user" => "admin" }
      )
    end
  end

  # The engine's delivery policy (batching, gzip, retries, 429/503 pauses, 401, per-entry
  # rejections, the queue's bound) is tested against a fault-injecting server in
  # ext/engine/tests; here only what Ruby adds to it or sees of it.
  describe "delivery failures" do
    it "calls on_error on a Ruby thread that is not the caller's" do
      server.respond_with { [500, {}, { error: "down" }] }
      client = client_for(max_retries: 0)
      client.log("INFO", "doomed")
      thread = next_report[:thread]
      expect(thread).to be_a(Thread)
      expect(thread).not_to eq(Thread.current)
    end

    def reporter_threads
      Thread.list.select { |thread| thread.name == "log_ingestion-reporter" && thread.alive? }
    end

    # Puma (preload_app!) warns about Ruby threads alive when it forks its workers.
    it "start no Ruby thread while the app boots, and the reporter at the first call after it" do
      before = reporter_threads
      LogIngestion.booting = true
      client = client_for
      expect(client.log("INFO", "Rails application started")).to be(true)
      expect(reporter_threads - before).to eq([])
      LogIngestion.booting = false
      client.log("INFO", "first request")
      expect(reporter_threads - before).not_to be_empty
    ensure
      LogIngestion.booting = false
    end

    it "report a failure seen by a boot-time poll once the app logs again" do
      server.respond_with { [500, {}, { error: "down" }] }
      LogIngestion.booting = true
      client = client_for(max_retries: 0)
      client.log("INFO", "doomed")
      expect(client.flush(timeout: 10)).to be(true)
      expect(next_report).to include(kind: "retries_exhausted", entries_lost: 1)
      expect(client.stats).to include(dropped_retries_exhausted: 1, failed_batches: 1)
    ensure
      LogIngestion.booting = false
    end

    it "warns on the gem's own logger when on_error is not set" do
      output = StringIO.new
      original = LogIngestion.logger
      LogIngestion.logger = Logger.new(output)
      server.respond_with { [500, {}, { error: "down" }] }
      client = client_for(max_retries: 0, on_error: nil)
      client.log("INFO", "doomed")
      server.wait_until(10) { output.string.include?("retries_exhausted") }
      expect(output.string).to include("WARN").and include("retries_exhausted")
    ensure
      LogIngestion.logger = original
    end

    # stats' times come from the engine as epoch seconds and reach Ruby as Times.
    it "show rate_limited_until in stats as a Time while a 429 pauses delivery, and log calls keep returning" do
      server.respond_with { [429, { "Retry-After" => "30" }, { error: "Rate limit exceeded" }] }
      client = client_for
      client.log("INFO", "limited")
      server.wait_for_requests(1)
      server.wait_until(5) { client.stats[:rate_limited_until] }
      expect(client.stats[:rate_limited_until]).to be_a(Time).and(be > Time.now + 20)
      expect(Array.new(100) { |i| client.log("INFO", "m#{i}") }).to all(be(true))
    end

    it "answer false for an entry the full queue drops (the engine's answer), and count it" do
      server.respond_with { :hang }
      client = client_for(max_queue_bytes: 4096, batch_size: 1)
      results = Array.new(200) { |i| client.log("INFO", "entry number #{i} #{'x' * 50}") }
      expect(results).to include(false)
      expect(client.stats[:dropped_queue_full]).to eq(results.count(false))
      expect(client.stats[:bytes_queued]).to be <= 4096
    end
  end

  describe "flush" do
    it "returns false when its timeout passes first" do
      server.respond_with { :hang }
      client = client_for
      client.log("INFO", "stuck")
      expect(client.flush(timeout: 0.3)).to be(false)
    end

    it "is interrupted by Timeout.timeout" do
      server.respond_with { :hang }
      client = client_for
      client.log("INFO", "stuck")
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      expect { Timeout.timeout(0.3) { client.flush(timeout: 60) } }.to raise_error(Timeout::Error)
      # Well before flush's own 60 s: the wait was cut, not waited out.
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 10
    end

    it "lets other Ruby threads run while it waits" do
      server.respond_with { :hang }
      client = client_for
      client.log("INFO", "stuck")
      progress = Queue.new
      flushed = nil
      flusher = Thread.new { flushed = client.flush(timeout: 10) }
      in_native_flush = ->(thread) { thread.backtrace.to_a.any? { |frame| frame.include?("`flush'") } }
      server.wait_until(10) { server.requests.size == 1 && in_native_flush.call(flusher) }
      expect(in_native_flush.call(flusher)).to be(true)
      # While flush is blocked (its batch hangs on the server), this thread runs: with
      # the GVL held by flush it could not push at all until flush returned.
      counter = Thread.new { 100.times { |i| progress << i } }
      counter.join(5)
      expect(progress.size).to eq(100)
      expect(flusher).to be_alive
      expect(flushed).to be_nil
      expect(flusher.kill.join(5)).to be(flusher) # the wait is interruptible too
    end
  end

  describe "send_log" do
    it "sends one prepared entry to /api/v1/logs now, bypassing the queue" do
      client = client_for(batch_interval: 30)
      answer = client.send_log({ timestamp: "2024-01-01T12:00:00Z", service: "custom", level: "WARN",
                                 message: "prepared", metadata: { k: 1 } })
      expect(answer).to include("accepted" => 1)
      expect(server.requests.map(&:path)).to eq(["/api/v1/logs"])
      expect(server.entries.first).to include("timestamp" => "2024-01-01T12:00:00Z", "service" => "custom",
                                              "level" => "WARN", "metadata" => { "k" => 1 })
    end

    it "takes the Hash of the guide's create_log_entry, with String keys" do
      client = client_for(batch_interval: 30)
      stamp = Time.now.getlocal("+02:00").iso8601 # the guide's Time.current.iso8601
      entry = { "timestamp" => stamp, "service" => "guide-app", "level" => "ERROR", "message" => "from the guide",
                "metadata" => { user_id: 7, at: Time.utc(2024, 5, 6, 1, 2, 3, 456_789), role: :admin,
                                nested: { list: [1, :two, nil] } } }
      expect(client.send_log(entry)).to include("accepted" => 1)
      expect(server.entries).to eq([{ "timestamp" => stamp, "service" => "guide-app", "level" => "ERROR",
                                      "message" => "from the guide",
                                      "metadata" => { "user_id" => 7, "at" => "2024-05-06T01:02:03.456789Z",
                                                      "role" => "admin", "nested" => { "list" => [1, "two", nil] } } }])
    end

    it "fills what the entry leaves out: a UTC timestamp of now, the service, INFO" do
      client = client_for(batch_interval: 30)
      before_call = Time.now.utc
      client.send_log({ message: "bare", level: :warn, timestamp: Time.new(2024, 1, 1, 12, 0, 0, "+02:00") })
      client.send_log({ message: "bare too" })
      first, second = server.entries
      expect(first).to include("timestamp" => "2024-01-01T10:00:00.000000Z", "level" => "WARN",
                               "service" => "client-spec", "metadata" => {})
      expect(second).to include("level" => "INFO", "service" => "client-spec")
      expect(Time.iso8601(second["timestamp"])).to be >= before_call.floor(6)
      expect(second["timestamp"]).to match(/\.\d{6}Z\z/)
    end

    it "is interrupted by Timeout.timeout while the server does not answer" do
      server.respond_with { :hang }
      client = client_for
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      expect { Timeout.timeout(0.3) { client.send_log({ message: "stuck" }, timeout: 60) } }.to raise_error(Timeout::Error)
      # Well before send_log's own 60 s: the wait was cut, not waited out.
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 10
    end

    it "returns nil and reports when the entry cannot be delivered" do
      server.respond_with { [401, {}, { error: "Invalid API key" }] }
      client = client_for
      expect(client.send_log({ level: "INFO", message: "refused" })).to be_nil
      report = next_report
      expect(report[:kind]).to eq("unauthorized")
      expect(report[:thread]).not_to eq(Thread.current)
    end
  end

  describe "shutdown" do
    it "delivers what is queued and reports the counts" do
      client = client_for(batch_interval: 30)
      3.times { |i| client.log("INFO", "last #{i}") }
      expect(client.shutdown(timeout: 5)).to eq(delivered: 3, undelivered: 0, spooled: 0)
      expect(server.entries.size).to eq(3)
    end

    it "reports the entries it could not deliver within its timeout" do
      server.respond_with { :hang }
      client = client_for
      2.times { |i| client.log("INFO", "stuck #{i}") }
      expect(client.shutdown(timeout: 0.3)).to include(undelivered: 2)
      expect(next_report).to include(kind: "shutdown", entries_lost: 2)
    end
  end

  describe "stats" do
    it "has the contract's fields" do
      client = client_for
      client.log("INFO", "counted")
      client.flush(timeout: 5)
      # docs/gem.md's list of stats keys, exactly (a key lost or added fails here).
      expect(client.stats.keys).to match_array(%i[enqueued sent dropped_queue_full dropped_retries_exhausted
                                                   dropped_unauthorized dropped_invalid dropped_internal
                                                   dropped_at_shutdown spooled recovered spool_skipped
                                                   retried rejected_by_server failed_batches
                                                   bytes_queued batches_in_flight rate_limited_until last_error
                                                   last_error_at last_success_at])
      expect(LogIngestion::EngineDelivery.idle_stats.keys).to match_array(client.stats.keys)
      expect(client.stats).to include(enqueued: 1, sent: 1)
    end
  end

  describe "configuration" do
    it "is a no-op with one warning when nothing says where to send" do
      output = StringIO.new
      original = LogIngestion.logger
      LogIngestion.logger = Logger.new(output)
      client = LogIngestion::Client.new.configure(LogIngestion::Configuration.new)
      expect([client.log("INFO", "a"), client.log("INFO", "b")]).to eq([false, false])
      expect(output.string.scan("not configured").size).to eq(1)
      expect(client.configured?).to be(false)
    ensure
      LogIngestion.logger = original
    end

    it "applies a setting changed after configure from the next call on" do
      client = client_for(batch_size: 512, batch_interval: 30)
      client.update_setting(:batch_size, 2)
      4.times { |i| client.log("INFO", "m#{i}") }
      server.wait_for_requests(2)
      expect(server.requests.map { |r| r.entries.size }).to eq([2, 2])
    end

    it "rejects a bad setting with a ConfigurationError and keeps the old one" do
      client = client_for
      expect { client.update_setting(:batch_size, -1) }.to raise_error(LogIngestion::ConfigurationError)
      expect(client.configuration.batch_size).to eq(512)
    end
  end
end

RSpec.describe "the native binding", :native, :gc_stress do
  # The Hash the gem hands the binding: every setting, defaults from Configuration.
  def settings(url)
    LogIngestion::Configuration.new(api_url: url, api_key: "test-key", service: "binding", batch_interval: 0.05,
                                    retry_delay: 0.01, max_retry_delay: 0.05).to_engine_hash
  end

  it "raises LogIngestion::Error for a Rust panic, and the process lives on" do
    expect { native_call { LogIngestion::Native.panic_for_testing("boom") } }
      .to raise_error(LogIngestion::Error, /Rust panic: boom/)
    expect(native_call { LogIngestion::Native.encode_metadata({ "still" => "alive" }) }).to eq('{"still":"alive"}')
  end

  it "takes every setting from the Hash and raises ConfigurationError naming one that is missing" do
    # The defaults live in Configuration only: a missing key is a bug in the caller, not a default.
    expect { native_call { LogIngestion::Native::Engine.new(settings("http://127.0.0.1:9").except("max_queue_bytes")) } }
      .to raise_error(LogIngestion::ConfigurationError, /max_queue_bytes/)
  end

  it "raises ConfigurationError for settings the engine refuses" do
    expect { native_call { LogIngestion::Native::Engine.new(settings("nope")) } }
      .to raise_error(LogIngestion::ConfigurationError, /api_url/)
  end

  it "enqueues, flushes, reports stats and shuts down" do
    server = ExternalFakeServer.start
    engine = native_call { LogIngestion::Native::Engine.new(settings(server.url)) }
    native_call do
      expect(engine.enqueue("INFO", "one", { "t" => Time.at(0), :s => [:a, { b: 1.5 }] })).to be(true)
      expect(engine.enqueue("ERROR", "two", nil)).to be(true)
      expect(engine.flush(10.0)).to be(true)
      expect(engine.stats).to include("enqueued" => 2, "sent" => 2)
      expect(engine.next_error(0.0)).to be_nil
      expect(engine.shutdown(1.0)).to eq("delivered" => 0, "undelivered" => 0, "spooled" => 0)
    end
    expect(engine.pid).to eq(Process.pid)
    expect(server.finish).to eq(%w[one two])
  end

  it "hands delivery failures to next_error" do
    server = ExternalFakeServer.start(:unauthorized)
    engine = native_call { LogIngestion::Native::Engine.new(settings(server.url)) }
    native_call do
      engine.enqueue("INFO", "refused", {})
      expect(engine.next_error(10.0)).to include("kind" => "unauthorized", "entries_lost" => 1)
      engine.shutdown(1.0)
    end
    server.finish
  end

  it "answers send_log with the status" do
    server = ExternalFakeServer.start
    engine = native_call { LogIngestion::Native::Engine.new(settings(server.url)) }
    native_call do
      expect(engine.send_log({ level: "INFO", message: "direct" }, 10.0)).to include("accepted" => 1, "status" => 201)
      engine.shutdown(1.0)
    end
    expect(server.finish).to eq(["direct"])
  end

  it "converts a send_log entry with String keys and nested metadata" do
    server = ExternalFakeServer.start
    engine = native_call { LogIngestion::Native::Engine.new(settings(server.url)) }
    entry = { "level" => "warn", "message" => "strings", "service" => "svc", "timestamp" => "2024-01-01T00:00:00Z",
              "metadata" => { "t" => Time.at(0), :s => [:a, { b: 1.5 }], "o" => Object.new } }
    native_call do
      expect(engine.send_log(entry, 10.0)).to include("accepted" => 1)
      engine.shutdown(1.0)
    end
    expect(server.finish).to eq(["strings"])
  end

  it "refuses every call in a forked child instead of touching the parent's engine (enqueue answers nil)" do
    server = ExternalFakeServer.start
    engine = native_call { LogIngestion::Native::Engine.new(settings(server.url)) }
    reader, writer = IO.pipe
    child = fork do
      reader.close
      outcomes = [-> { engine.enqueue("INFO", "child", nil) }, -> { engine.flush(0.1) }, -> { engine.stats },
                  -> { engine.send_log({ message: "child" }, 0.1) }, -> { engine.shutdown(0.1) }].map do |call|
        "returned #{call.call.inspect}"
      rescue LogIngestion::Error => e
        e.message.include?("forked child") ? "refused" : e.message
      end
      writer.write(outcomes.join(","))
      writer.close
      exit!(0)
    end
    writer.close
    outcomes = reader.read
    Process.wait(child)
    expect(outcomes).to eq((["returned nil"] + (["refused"] * 4)).join(","))
    native_call do
      expect(engine.enqueue("INFO", "parent", nil)).to be(true)
      engine.shutdown(5.0)
    end
    expect(server.finish).to eq(["parent"])
  end

  it "answers send_log with the error when the server refuses" do
    server = ExternalFakeServer.start(:unauthorized)
    engine = native_call { LogIngestion::Native::Engine.new(settings(server.url)) }
    native_call do
      expect(engine.send_log({ level: "INFO", message: "refused" }, 10.0)).to include("kind" => "unauthorized")
      engine.shutdown(1.0)
    end
    server.finish
  end
end
