# frozen_string_literal: true

require_relative "support/rails_app"
require_relative "../support/real_ingestion_server"

# The Rails integration against the real ingestion server and PostgreSQL
# (RealIngestionServer.shared: a fresh database for the run): entries land in the
# `logs` table. Skipped (with the reason) when the server binary or the native
# extension is not built; CI builds both before rspec.
RSpec.describe "Rails integration end to end", :end_to_end do
  before(:all) do
    reason = RealIngestionServer.unavailable_reason
    reason ||= "the native extension is not built (rake compile)" unless LogIngestion::Native.available?
    skip "end-to-end specs skipped: #{reason}" if reason

    @server = RealIngestionServer.shared
    @url = @server.url
    @dir = Dir.mktmpdir("li-rails-e2e")
  end

  after(:all) do
    FileUtils.remove_entry(@dir) if @dir
  end

  def rows(sql)
    @server.rows(sql)
  end

  def quote(text)
    RealIngestionServer.quote(text)
  end

  it "runs on the storage mode the run asked for (TimescaleDB in rake test:ruby when installed)" do
    requested = RealIngestionServer.requested_storage
    skip "no storage mode requested (LOG_INGESTION_TEST_STORAGE unset)" unless requested

    health = JSON.parse(Net::HTTP.get(URI("#{@url}/health")))
    expect(health["storage"]).to eq(requested)
    hypertable = rows("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").first
    expect(hypertable).to eq(requested == "timescaledb" ? "1" : "0")
  end

  describe "in this process" do
    let(:service) { "rails-e2e-#{SecureRandom.hex(6)}" }

    before do
      options = ActiveSupport::OrderedOptions.new
      options.api_url = @url
      options.api_key = @server.api_key
      options.service = service
      options.test_mode = false
      options.batch_interval = 0.1
      LogIngestion::Railtie.configure_client(options)
    end

    after do
      RailsAppHelpers.reset_glue
      LogIngestion::Railtie.configure_client(Rails.application.config.log_ingestion) # back to test mode
    end

    it "stores a trivial GET as exactly one entry, the request entry, under its request id" do
      request_id = "e2e-#{SecureRandom.hex(8)}"
      get "/widgets", {}, "HTTP_X_REQUEST_ID" => request_id
      expect(LogIngestionClient.flush(timeout: 20)).to be(true)

      stored = rows("SELECT level || ' ' || message || ' ' || (metadata->>'kind') FROM logs " \
                    "WHERE service = #{quote(service)} AND metadata->>'request_id' = #{quote(request_id)}")
      expect(stored).to eq(["INFO GET /widgets 200 request"])
    end

    def stored(message)
      rows("SELECT level || ' ' || metadata::text FROM logs WHERE service = #{quote(service)} " \
           "AND message = #{quote(message)}")
    end

    it "stores an exception's entry beside the request entry, and the exception still propagates" do
      expect { get "/widgets/boom" }.to raise_error(WidgetsController::Boom)
      expect(LogIngestionClient.flush(timeout: 20)).to be(true)

      expect(stored("WidgetsController::Boom: widget exploded"))
        .to contain_exactly(a_string_matching(/\AERROR .*"kind": "exception"/))
      expect(stored("GET /widgets/boom 500")).to contain_exactly(a_string_matching(/\AERROR .*"status": 500/))
    end

    it "stores a slow query as a warning (the sql subscriber)" do
      LogIngestion::Subscribers.subscribe(only: %i[sql])
      get "/widgets/slow", ms: 150
      expect(LogIngestionClient.flush(timeout: 20)).to be(true)

      expect(stored("Slow SQL query")).to include(a_string_matching(/\AWARN .*sleep_ms/))
    end

    it "stores a job run, and a failed one with its exception" do
      ExportJob.perform_later(11)
      expect { FailingJob.perform_later(12) }.to raise_error(FailingJob::Failure)
      expect(LogIngestionClient.flush(timeout: 20)).to be(true)

      expect(stored("ExportJob performed")).to contain_exactly(a_string_matching(/\AINFO .*"outcome": "performed"/))
      expect(stored("FailingJob failed")).to contain_exactly(a_string_matching(/\AERROR .*"outcome": "failed"/))
      expect(stored("FailingJob::Failure: job for user 12 failed")).to contain_exactly(a_string_matching(/\AERROR /))
    end

    it "stores Rails.logger's tagged records with their tags" do
      get "/widgets/tagged"
      expect(LogIngestionClient.flush(timeout: 20)).to be(true)

      expect(stored("tagged warning")).to contain_exactly(a_string_matching(/\AWARN .*tenant-42/))
    end

    it "never lets a filtered parameter reach the database" do
      secret = "hunter2-#{SecureRandom.hex(8)}"
      LogIngestion::Subscribers.subscribe(only: LogIngestion::Subscribers::ALL, slow_query_ms: 0)
      RailsAppHelpers.forwarder.forward_level = :debug # every Rails line, SQL with its binds included
      post "/widgets?password=#{secret}", { name: "gear", password: secret }
      post "/jobs/export", { user_id: 4 }
      Rails.logger.info("login attempt password=#{secret}")
      expect(LogIngestionClient.flush(timeout: 20)).to be(true)

      stored = rows("SELECT count(*) FROM logs WHERE service = #{quote(service)}").first.to_i
      leaked = rows("SELECT count(*) FROM logs WHERE service = #{quote(service)} " \
                    "AND (message LIKE #{quote("%#{secret}%")} " \
                    "OR metadata::text LIKE #{quote("%#{secret}%")})").first.to_i
      masked = rows("SELECT count(*) FROM logs WHERE service = #{quote(service)} " \
                    "AND (message LIKE '%[FILTERED]%' OR metadata::text LIKE '%[FILTERED]%')").first.to_i
      expect(stored).to be > 10
      expect(masked).to be > 0
      expect(leaked).to eq(0)
    end

    # pin_code is in the app's config.filter_parameters but not among the keys the
    # server masks itself, so only the client's metadata_filter keeps it out.
    it "never lets a filtered key in the app's own metadata reach the database" do
      secret = "hunter2-#{SecureRandom.hex(8)}"
      LogIngestionClient.info("Signed in", { password: secret, nested: { token: secret, pin_code: secret }, user_id: 7 })
      expect(LogIngestionClient.flush(timeout: 20)).to be(true)

      metadata = rows("SELECT metadata::text FROM logs WHERE service = #{quote(service)} " \
                      "AND message = 'Signed in'")
      expect(metadata.size).to eq(1)
      expect(metadata.first).not_to include(secret)
      expect(JSON.parse(metadata.first)).to eq(
        "password" => "[FILTERED]", "nested" => { "token" => "[FILTERED]", "pin_code" => "[FILTERED]" }, "user_id" => 7
      )
    end
  end

  describe "rake logs:test" do
    before(:all) do
      require "rake"
      Rails.application.load_tasks unless Rake::Task.task_defined?("logs:test")
    end

    after { LogIngestion::Railtie.configure_client(Rails.application.config.log_ingestion) }

    def configure(url, service, **overrides)
      options = ActiveSupport::OrderedOptions.new
      options.merge!(api_url: url, api_key: @server.api_key, service: service, test_mode: false,
                     max_retries: 0, max_retry_elapsed: 1.0, open_timeout: 1.0, read_timeout: 2.0,
                     batch_interval: 60, **overrides) # queued entries go out only when flushed
      LogIngestion::Railtie.configure_client(options)
    end

    it "says the test entry arrived, and it is in the logs table" do
      service = "rails-e2e-rake-#{SecureRandom.hex(6)}"
      configure(@url, service)

      expect { Rake::Task["logs:test"].execute }.to output(/the service accepted it/).to_stdout
      count = rows("SELECT count(*) FROM logs WHERE service = #{quote(service)} " \
                   "AND message = 'Test log from Rails (rails logs:test)'")
      expect(count.first.to_i).to eq(1)
    end

    it "flushes the entries queued before it" do
      service = "rails-e2e-rake-flush-#{SecureRandom.hex(6)}"
      configure(@url, service)
      LogIngestionClient.info("queued before logs:test")

      expect { Rake::Task["logs:test"].execute }.to output(/the service accepted it/).to_stdout
      count = rows("SELECT count(*) FROM logs WHERE service = #{quote(service)} AND message = 'queued before logs:test'")
      expect(count.first.to_i).to eq(1)
    end

    it "prints the server's 401 when the key is wrong" do
      configure(@url, "rails-e2e-rake-wrong-key")
      LogIngestionClient.api_key = "not-the-key"

      expect { Rake::Task["logs:test"].execute }
        .to raise_error(SystemExit).and output(/did NOT arrive \(last error: .*HTTP 401.*Invalid API key/).to_stderr
    end

    it "says so and fails when the test entry did not arrive" do
      configure("http://127.0.0.1:#{RealIngestionServer.free_port}", "rails-e2e-rake-down")

      expect { Rake::Task["logs:test"].execute }
        .to raise_error(SystemExit).and output(/did NOT arrive/).to_stderr
    end

    # Retried like a batch, a refused connection would be retried for send_log's whole
    # timeout (30 s); one attempt answers at once (the bound leaves room for a busy machine).
    it "answers a refused connection within the connect timeout, naming the refusal" do
      configure("http://127.0.0.1:#{RealIngestionServer.free_port}", "rails-e2e-rake-refused", max_retry_elapsed: 300.0)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)

      expect { Rake::Task["logs:test"].execute }
        .to raise_error(SystemExit)
        .and output(/did NOT arrive \(last error: .*onnection refused.*one attempt, not retried/).to_stderr
      expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started).to be < 15.0 # half of send_log's timeout
    end
  end

  describe "at exit" do
    it "delivers what is still queued when the app's process exits" do
      service = "rails-e2e-exit-#{SecureRandom.hex(6)}"
      env = { "RAILS_ENV" => "test", "LOG_INGESTION_URL" => @url, "LOG_INGESTION_API_KEY" => @server.api_key,
              "LOG_INGESTION_SERVICE" => service, "LOG_INGESTION_TEST_MODE" => nil,
              "LOG_INGESTION_TEST_BATCH_INTERVAL" => "60", # nothing is sent before exit unless flushed
              "LOG_INGESTION_TEST_DB" => File.join(@dir, "exit.sqlite3") }
      script = 'require "./spec/rails/app/config/environment"; 5.times { |i| LogIngestionClient.info("queued #{i}") }'
      _out, err, status = Open3.capture3(env, RbConfig.ruby, "-Ilib", "-e", script, chdir: RealIngestionServer::ROOT)
      expect(status).to be_success, err

      count = rows("SELECT count(*) FROM logs WHERE service = #{quote(service)} AND message LIKE 'queued %'")
      expect(count.first.to_i).to eq(5)
    end
  end

  describe "at exit with the service down" do
    it "does not wait out shutdown_timeout when the service refuses connections, and says so" do
      env = { "RAILS_ENV" => "test", "LOG_INGESTION_URL" => "http://127.0.0.1:#{RealIngestionServer.free_port}",
              "LOG_INGESTION_API_KEY" => "any", "LOG_INGESTION_SERVICE" => "rails-e2e-refused",
              "LOG_INGESTION_TEST_MODE" => nil, "LOG_INGESTION_TEST_BATCH_INTERVAL" => "0.05",
              "LOG_INGESTION_TEST_DB" => File.join(@dir, "refused.sqlite3") }
      script = 'require "./spec/rails/app/config/environment"; ' \
               "LogIngestionClient.shutdown_timeout = 120.0; " \
               'LogIngestionClient.info("lost")' # first attempted at exit, refused
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      _out, err, status = Open3.capture3(env, RbConfig.ruby, "-Ilib", "-e", script, chdir: RealIngestionServer::ROOT)
      elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started

      expect(status).to be_success, err
      # Waiting out shutdown_timeout would take 120 s; boot takes 1-3 s on a quiet machine, and
      # the bound leaves room for a busy one (other suites beside this one).
      expect(elapsed).to be < 60
      expect(err).to match(/shutdown: .*refused the connection.*no spool_dir is set \(1 entries lost\)/)
      # One line per engine, never one per batch: the boot's engine (retired by the setting change in a thread of
      # its own, which the exit waits for) and the last one.
      expect(err.scan(/log_ingestion: shutdown: .*\(1 entries lost\)$/).size).to eq(2)
    end
  end

  describe "Puma in cluster mode" do
    # Starts Puma (2 workers, preloaded app) shipping as +service+; returns [process, base URL, pidfile].
    # The app's environment shipping as +service+ (+extra+ added).
    def app_env(service, batch_interval:, **extra)
      { "RAILS_ENV" => "test",
        "LOG_INGESTION_URL" => @url, "LOG_INGESTION_API_KEY" => @server.api_key,
        "LOG_INGESTION_SERVICE" => service, "LOG_INGESTION_TEST_MODE" => nil,
        "LOG_INGESTION_TEST_BATCH_INTERVAL" => batch_interval.to_s,
        "LOG_INGESTION_TEST_DB" => File.join(@dir, "#{service}.sqlite3"),
        "LOG_INGESTION_TEST_LOG" => File.join(@dir, "#{service}-rails.log"),
        "RUBYLIB" => [File.join(RealIngestionServer::ROOT, "lib"), ENV["RUBYLIB"]].compact.join(File::PATH_SEPARATOR) }
        .merge(extra)
    end

    def start_puma(service, batch_interval:, **extra)
      port = RealIngestionServer.free_port
      pidfile = File.join(@dir, "#{service}.pid")
      env = app_env(service, batch_interval: batch_interval, **extra).merge("PORT" => port.to_s, "PUMA_PIDFILE" => pidfile)
      puma = ChildProcess.new(
        env, [RbConfig.ruby, Gem.bin_path("puma", "puma"), "-C", "spec/rails/app/config/puma.rb"],
        File.join(@dir, "#{service}-puma.log")
      )
      base = "http://127.0.0.1:#{port}"
      Polling.wait_until(timeout: 60, interval: 0.1, what: "puma at #{base}") do
        raise "puma exited:\n#{puma.log}" unless puma.alive?

        RealIngestionServer.http_ok?("#{base}/widgets/pid")
      end
      [puma, base, pidfile]
    rescue StandardError
      puma&.stop
      raise
    end

    # One thread per worker: concurrent slow requests spread over both workers.
    def spread_requests(base)
      threads = Array.new(6) { Thread.new { Net::HTTP.get_response(URI("#{base}/widgets/served")).code } }
      threads.map(&:value)
    end

    def request_pids(service)
      rows("SELECT DISTINCT metadata->>'pid' FROM logs WHERE service = #{quote(service)} " \
           "AND message = 'Served'").map(&:to_i)
    end

    # README's walk-through through Puma to the real server: a trivial GET, a request
    # that logs through LogIngestionClient and enqueues a job that another process (a
    # worker) runs from its payload, a 500, a routing error and the stats endpoint.
    it "stores one entry per request, one per job run in a worker, and each exception once" do
      service = "rails-e2e-journey-#{SecureRandom.hex(6)}"
      job_dir = Dir.mktmpdir("li-jobs", @dir)
      extra = { "LOG_INGESTION_TEST_JOB_DIR" => job_dir, "LOG_INGESTION_TEST_SHOW_EXCEPTIONS" => "1" }
      puma, base, = start_puma(service, batch_interval: 0.1, **extra)
      ids = %w[trivial greet boom nope stats].to_h { |name| [name, "#{name}-#{SecureRandom.hex(6)}"] }
      begin
        get = ->(path, name) { Net::HTTP.get_response(URI("#{base}#{path}"), { "X-Request-Id" => ids.fetch(name) }).code }
        codes = [get.call("/widgets", "trivial"), get.call("/widgets/greet?password=hunter2&name=x", "greet"),
                 get.call("/widgets/boom", "boom"), get.call("/nope?token=abc", "nope"),
                 get.call("/log_ingestion/stats", "stats")]
        # The job runs in a process of its own, from the payload the request wrote.
        worker = 'require "./spec/rails/app/config/environment"; ' \
                 "exit(FileQueueAdapter.work_off(ENV.fetch('LOG_INGESTION_TEST_JOB_DIR')) == 1)"
        _out, err, status = Open3.capture3(app_env(service, batch_interval: 0.1, **extra),
                                           RbConfig.ruby, "-Ilib", "-e", worker, chdir: RealIngestionServer::ROOT)
      ensure
        puma.stop
      end

      expect(codes).to eq(%w[200 200 500 404 200])
      expect(status).to be_success, err
      # Puma lists the Ruby threads alive when it forks. `require "rails"` itself leaves
      # one with Debian's concurrent-ruby 1.1.6 (its thread-local-variable reaper); none
      # may be ours (before: log_ingestion-reporter).
      listed = puma.log.lines.grep(/! #<Thread/)
      expect(listed).to all(include("concurrent-ruby"))
      expect(puma.log).not_to include("log_ingestion")

      entries = rows("SELECT json_build_array(level, message, coalesce(metadata->>'request_id', ''), " \
                     "coalesce(metadata->>'parent_request_id', ''))::text " \
                     "FROM logs WHERE service = #{quote(service)}").map { |row| JSON.parse(row) }
      of = ->(name) { entries.select { |_, _, id, parent| [id, parent].include?(ids.fetch(name)) }.map { |e| e[0, 2] } }
      expect(of.call("trivial")).to eq([["INFO", "GET /widgets 200"]])
      expect(of.call("greet")).to contain_exactly(["INFO", "User greeted"], ["INFO", "GET /widgets/greet 200"],
                                                  ["INFO", "ExportJob performed"])
      expect(of.call("boom")).to contain_exactly(["ERROR", "GET /widgets/boom 500"],
                                                 ["ERROR", "WidgetsController::Boom: widget exploded"])
      expect(of.call("nope")).to eq([["WARN", 'ActionController::RoutingError: No route matches [GET] "/nope"']])
      expect(of.call("stats")).to eq([])
      job = entries.find { |_, message| message == "ExportJob performed" }
      expect(job[2, 2]).to eq(["", ids.fetch("greet")]) # the worker's entry: the request is its parent

      expect(rows("SELECT count(*) FROM logs WHERE service = #{quote(service)} " \
                  "AND (message LIKE '%[FILTERED]]%' OR metadata::text LIKE '%[FILTERED]]%' " \
                  "OR metadata::text LIKE '%hunter2%')").first.to_i).to eq(0)
      expect(entries.map(&:first)).not_to include("DEBUG", "FATAL")
    end

    it "delivers each worker's queue when Puma shuts down" do
      service = "rails-e2e-puma-exit-#{SecureRandom.hex(6)}"
      puma, base, = start_puma(service, batch_interval: 60) # nothing is sent before exit unless flushed
      begin
        answered = spread_requests(base)
        workers = answered.size == 6 ? request_pids(service) : nil
      ensure
        puma.stop
      end

      expect(answered).to all(eq("200"))
      expect(workers).to eq([]) # still queued while Puma ran
      expect(request_pids(service).size).to eq(2)
    end

    it "ships entries from every worker forked from the preloaded app" do
      service = "rails-e2e-puma-#{SecureRandom.hex(6)}"
      puma, base, pidfile = start_puma(service, batch_interval: 0.1)
      begin
        expect(spread_requests(base)).to all(eq("200"))

        pids = Polling.wait_until(timeout: 30, interval: 0.1, what: "Served entries from 2 workers") do
          found = request_pids(service)
          found if found.size >= 2
        end
        master = Integer(File.read(pidfile))
        expect(pids.size).to eq(2)
        expect(pids).not_to include(master)
        started = rows("SELECT metadata->>'pid' FROM logs WHERE service = #{quote(service)} " \
                       "AND message = 'Rails application started'").map(&:to_i)
        expect(started).to eq([master]) # logged once, by the preloaded master
      ensure
        puma.stop
      end
    end
  end
end
