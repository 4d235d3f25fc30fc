# frozen_string_literal: true

# What the gem costs a real Rails app, side by side with Rails' default logging and
# with lograge, in one run: a `rails new` app (Debian's Rails 6.1, production
# environment) per variant, each under Puma with one worker process and one thread, all
# running at once and driven by `ab -k -c1`, in ROUNDS rounds per action; a round sends
# each variant REQUESTS requests in SLICES short runs interleaved with the other
# variants' (so the machine's other load falls on all alike). The figure is CPU per
# request: each Puma worker's utime + stime from /proc/PID/stat over the round (delivery
# included: a round ends when the service has stored everything it will get) divided by
# its requests; the delivery threads' share (threads named log-ingestion* /
# log_ingestion* in /proc/PID/task) is printed beside it, and the entries the service
# stored per request. A script, not a test: it prints figures; the targets are judged
# by whoever reads them.
#
#   rake bench:rails
#   REQUESTS=5000 ROUNDS=3 LOG_INGESTION_SERVER_BIN=target/release/log-ingestion-server \
#     ruby spec/benchmarks/rails_cost_benchmark.rb
#
# Environment:
#   REQUESTS  requests per variant, action and round (default 3000), sent in SLICES
#             (default 6) runs interleaved with the other variants'; WARMUP per variant
#             and action before the first round (default 500); ROUNDS (default 3)
#   VARIANTS  comma list, default rails,lograge,log_ingestion,log_ingestion_client
#             (also: log_ingestion_test_mode, log_ingestion_verbose); see spec/benchmarks/rails_app/config/
#             initializers/zz_bench_variant.rb
#   ACTIONS   comma list, default trivial,five_info (also: five_logger; rails_app/app/
#             controllers/bench_controller.rb)
#   KEEP_APP=1  reuse the app generated under tmp/rails-cost-bench by an earlier run
#   DATABASE_URL  the PostgreSQL server the ingestion server's database is created on
#             (else bin/postgres-dev's private cluster); LOG_INGESTION_TEST_STORAGE its mode
#
# The app is generated under tmp/rails-cost-bench/ (rails new --minimal, offline, the
# gem from this checkout as a `path:` gem, the install generator's initializer as it
# is) and spec/benchmarks/rails_app/ is copied over it. Variants are chosen with
# BENCH_VARIANT through `config.log_ingestion.*` / `config.lograge.*` settings only.

require "fileutils"
require "json"
require "open3"
require "rbconfig"
require_relative "../support/real_ingestion_server"
require_relative "../support/child_process"
require_relative "../support/polling"

module RailsCostBenchmark
  ROOT = File.expand_path("../..", __dir__)
  OVERLAY = File.join(__dir__, "rails_app")
  WORK = File.join(ROOT, "tmp", "rails-cost-bench")
  APP = File.join(WORK, "app")
  REQUESTS = Integer(ENV.fetch("REQUESTS", "3000"))
  WARMUP = Integer(ENV.fetch("WARMUP", "500"))
  ROUNDS = Integer(ENV.fetch("ROUNDS", "3"))
  SLICES = Integer(ENV.fetch("SLICES", "6"))
  VARIANTS = ENV.fetch("VARIANTS", "rails,lograge,log_ingestion,log_ingestion_client").split(",").map(&:strip)
  ACTIONS = ENV.fetch("ACTIONS", "trivial,five_info").split(",").map(&:strip)
  LABELS = {
    "rails" => "Rails default logging",
    "lograge" => "lograge (JSON)",
    "log_ingestion" => "log_ingestion, README's setup",
    "log_ingestion_client" => "log_ingestion, Rails glue off",
    "log_ingestion_test_mode" => "log_ingestion, README's setup, test_mode",
    "log_ingestion_verbose" => "log_ingestion, every entry (middleware, subscribers, logger from :info)"
  }.freeze
  ACTION_LABELS = {
    "trivial" => "trivial action (render plain)",
    "five_info" => "5 info calls (LogIngestionClient.info with the gem, else Rails.logger.info)",
    "five_logger" => "5 Rails.logger.info calls"
  }.freeze
  # The service is quiet for this long (longer than the gem's 1 s batch_interval)
  # before a run's CPU is read: what the run caused has been delivered by then.
  SETTLE_SECONDS = 1.5
  CLOCK_TICKS = Integer(`getconf CLK_TCK`.strip.then { |t| t.empty? ? "100" : t })

  module_function

  def abort_unless_ready
    abort "ab not found (apt-get install apache2-utils; bin/setup does)" unless system("command -v ab > /dev/null")
    abort "no server binary (#{RealIngestionServer.unavailable_reason})" unless RealIngestionServer.available?
    unless File.exist?(File.join(ROOT, "lib/log_ingestion/log_ingestion.so"))
      abort "native extension not built (rake compile)"
    end
    unknown = VARIANTS - LABELS.keys
    abort "unknown VARIANTS #{unknown.join(', ')} (known: #{LABELS.keys.join(', ')})" unless unknown.empty?
    unknown = ACTIONS - ACTION_LABELS.keys
    abort "unknown ACTIONS #{unknown.join(', ')} (known: #{ACTION_LABELS.keys.join(', ')})" unless unknown.empty?
  end

  # ---------------------------------------------------------------- the app

  def app_env(variant: nil)
    { "BUNDLE_GEMFILE" => File.join(APP, "Gemfile"), "RUBYOPT" => nil, "RUBYLIB" => nil, "BUNDLER_SETUP" => nil,
      "DATABASE_URL" => nil, "RAILS_ENV" => "production", "RAILS_LOG_TO_STDOUT" => nil,
      "SECRET_KEY_BASE" => "rails-cost-benchmark-#{'0' * 64}", "BENCH_VARIANT" => variant }
  end

  def run!(env, *argv, chdir:)
    out, status = Open3.capture2e(env, *argv, chdir: chdir)
    raise "#{argv.join(' ')} failed:\n#{out}" unless status.success?

    out
  end

  def generate_app
    if ENV["KEEP_APP"] == "1" && File.exist?(File.join(APP, "config/bench_puma.rb"))
      puts "app: #{APP} (kept)"
      FileUtils.cp_r("#{OVERLAY}/.", APP)
      return
    end
    FileUtils.rm_rf(WORK)
    FileUtils.mkdir_p(WORK)
    # `rails new` exits non-zero offline only because of what --skip-bundle skips; the
    # files it made are checked below.
    Open3.capture2e(app_env, RbConfig.ruby, Gem.bin_path("railties", "rails"), "new", APP, "--minimal",
                    "--skip-bundle", "--skip-git", "--skip-webpack-install", "--skip-javascript", "--skip-bootsnap",
                    "--skip-sprockets", "--skip-spring", "--skip-listen", "--quiet", chdir: WORK)
    abort "rails new made no app under #{APP}" unless File.exist?(File.join(APP, "config/application.rb"))
    # Debian packages the frameworks, not the `rails` meta gem: name them instead.
    File.write(File.join(APP, "Gemfile"), <<~GEMFILE)
      source "https://rubygems.org"
      gem "railties", "~> 6.1.7"
      gem "actionpack", "~> 6.1.7"
      gem "activerecord", "~> 6.1.7"
      gem "activejob", "~> 6.1.7"
      gem "sqlite3"
      gem "puma"
      # Required by config/bench_variant.rb for the variants that use them.
      gem "lograge", require: false
      gem "log_ingestion", path: #{ROOT.inspect}, require: false
    GEMFILE
    run!(app_env, "bundle", "install", "--local", "--quiet", chdir: APP)
    run!(app_env, RbConfig.ruby, "bin/rails", "generate", "log_ingestion:install", chdir: APP)
    FileUtils.cp_r("#{OVERLAY}/.", APP)
    application = File.join(APP, "config/application.rb")
    text = File.read(application)
    text.sub!(/^Bundler\.require\(\*Rails\.groups\)\n/) { |line| "#{line}require_relative \"bench_variant\"\n" } or
      abort "config/application.rb has no Bundler.require line"
    File.write(application, text)
    # The generator's initializer configures config.log_ingestion, which exists only
    # when the variant loaded the gem.
    initializer = File.join(APP, "config/initializers/log_ingestion.rb")
    File.write(initializer, "return unless defined?(LogIngestion::Railtie)\n\n#{File.read(initializer)}")
    puts "app: #{APP} (rails new #{Gem.loaded_specs['railties']&.version || '6.1'}, production)"
  end

  # ---------------------------------------------------------------- /proc

  # [utime + stime in µs, {thread name => µs}] of process +pid+ (all its threads, the
  # exited ones included in the first figure).
  def cpu(pid)
    total = ticks(File.read("/proc/#{pid}/stat"))
    threads = Hash.new(0)
    Dir.glob("/proc/#{pid}/task/*/stat").each do |path|
      stat = File.read(path)
      threads[stat[/\((.*)\)/m, 1]] += ticks(stat)
    rescue Errno::ENOENT, Errno::ESRCH
      next # the thread ended meanwhile
    end
    [total, threads]
  end

  def ticks(stat)
    fields = stat[(stat.rindex(")") + 2)..].split
    # After the command: state(3) ... utime(14) stime(15), counted from field 3.
    (Integer(fields[11]) + Integer(fields[12])) * 1_000_000 / CLOCK_TICKS
  end

  def delivery_thread?(name)
    name.start_with?("log-ingestion", "log_ingestion")
  end

  # The one worker process Puma's master +master_pid+ forked.
  def worker_pid(master_pid)
    Dir.glob("/proc/[0-9]*/stat").each do |path|
      stat = File.read(path)
      next unless stat[(stat.rindex(")") + 2)..].split[1].to_i == master_pid

      pid = Integer(File.basename(File.dirname(path)))
      return pid if File.read("/proc/#{pid}/cmdline").include?("cluster worker")
    rescue Errno::ENOENT, Errno::ESRCH
      next
    end
    nil
  end

  # ---------------------------------------------------------------- one variant's Puma

  class App
    attr_reader :variant, :port, :service

    def initialize(variant, server)
      @variant = variant
      @server = server
      @service = "rails-bench-#{variant.tr('_', '-')}"
      @port = RealIngestionServer.free_port
    end

    def start
      env = RailsCostBenchmark.app_env(variant: @variant).merge(
        "PORT" => @port.to_s, "LOG_INGESTION_URL" => @server.url, "LOG_INGESTION_API_KEY" => @server.api_key,
        "LOG_INGESTION_SERVICE" => @service
      )
      command = "cd '#{APP}' && exec '#{RbConfig.ruby}' -S bundle exec puma -C config/bench_puma.rb"
      @process = ChildProcess.new(env, ["sh", "-c", command], File.join(WORK, "puma-#{@variant}.log"))
      Polling.wait_until(timeout: 120, interval: 0.2, what: "Puma of #{@variant} on #{@port}") do
        raise "Puma of #{@variant} exited:\n#{@process.log}" unless @process.alive?

        (@worker = RailsCostBenchmark.worker_pid(@process.pid)) &&
          RealIngestionServer.http_ok?("http://127.0.0.1:#{@port}/trivial")
      end
      self
    end

    def stop
      @process&.stop
    end

    def stored
      @server.count(service: @service)
    end

    def sends?
      @variant.start_with?("log_ingestion") && @variant != "log_ingestion_test_mode"
    end

    # { cpu: µs, threads: {name => µs}, count: entries stored } now.
    def snapshot
      total, threads = RailsCostBenchmark.cpu(@worker)
      { cpu: total, threads: threads, count: sends? ? stored : nil }
    end

    def drive(action, requests)
      RailsCostBenchmark.ab("http://127.0.0.1:#{@port}/#{action}", requests)
    end

    # Per request since +before+ (a snapshot): { cpu:, delivery:, entries: }.
    def since(before, requests)
      after = snapshot
      delivery = after[:threads].sum do |name, micros|
        RailsCostBenchmark.delivery_thread?(name) ? micros - before[:threads].fetch(name, 0) : 0
      end
      { cpu: (after[:cpu] - before[:cpu]).fdiv(requests), delivery: delivery.fdiv(requests),
        entries: sends? ? (after[:count] - before[:count]).fdiv(requests) : nil }
    end
  end

  # Waits until no app's service count has changed for SETTLE_SECONDS: what the runs
  # caused has been delivered (and its delivery CPU spent).
  def settle(apps)
    counts = apps.to_h { |app| [app, app.sends? ? app.stored : 0] }
    quiet_since = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    Polling.wait_until(timeout: 300, interval: 0.25, what: "the entries to arrive") do
      now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      apps.each do |app|
        next unless app.sends?

        latest = app.stored
        next if latest == counts[app]

        counts[app] = latest
        quiet_since = now
      end
      now - quiet_since >= SETTLE_SECONDS
    end
  end

  def ab(url, requests)
    out, status = Open3.capture2e("ab", "-k", "-c", "1", "-n", requests.to_s, url)
    raise "ab #{url} failed:\n#{out}" unless status.success?

    complete = out[/^Complete requests:\s+(\d+)/, 1].to_i
    failed = out[/^Failed requests:\s+(\d+)/, 1].to_i
    non2xx = out[/^Non-2xx responses:\s+(\d+)/, 1].to_i
    return if complete == requests && failed.zero? && non2xx.zero?

    raise "ab #{url}: #{complete} complete, #{failed} failed, #{non2xx} non-2xx:\n#{out}"
  end

  # ---------------------------------------------------------------- the report

  def median(values)
    sorted = values.sort
    mid = sorted.size / 2
    sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
  end

  # "+12% (+8..+20)": +variant+'s CPU over +reference+'s, the median of the rounds'
  # ratios (each round's variants ran under the same load) with their range; "" for the
  # reference itself or one not measured.
  def overhead(results, action, variant, reference)
    return "" if variant == reference || !VARIANTS.include?(reference)

    ratios = results[[variant, action]].zip(results[[reference, action]]).filter_map do |run, base|
      run[:cpu] / base[:cpu] - 1 if base[:cpu].positive?
    end
    return "—" if ratios.empty?

    format("%+.0f%% (%+.0f..%+.0f)", median(ratios) * 100, ratios.min * 100, ratios.max * 100)
  end

  def number(value, digits = 0)
    return "—" if value.nil?

    whole, fraction = format("%.#{digits}f", value).split(".")
    whole = whole.reverse.scan(/\d{1,3}-?/).join(",").reverse.sub(/\A-,/, "-").sub(/\A,/, "")
    fraction ? "#{whole}.#{fraction}" : whole
  end

  def print_table(action, results)
    medians = VARIANTS.to_h { |variant| [variant, median(results[[variant, action]].map { |r| r[:cpu] })] }
    puts
    puts "#{ACTION_LABELS.fetch(action)}: CPU µs per request, median of #{ROUNDS} rounds (min–max); " \
         "overheads: median of the rounds' ratios (min..max)"
    puts
    puts "| variant | µs CPU/request | min–max | of which delivery threads | entries sent/request | vs Rails default | vs lograge |"
    puts "| --- | --- | --- | --- | --- | --- | --- |"
    VARIANTS.each do |variant|
      runs = results[[variant, action]]
      cpus = runs.map { |r| r[:cpu] }
      entries = runs.map { |r| r[:entries] }.compact
      puts "| #{LABELS.fetch(variant)} | #{number(medians[variant])} | #{number(cpus.min)}–#{number(cpus.max)} | " \
           "#{number(median(runs.map { |r| r[:delivery] }), 1)} | #{entries.empty? ? '—' : number(median(entries), 2)} | " \
           "#{overhead(results, action, variant, 'rails')} | #{overhead(results, action, variant, 'lograge')} |"
    end
  end

  def load_average
    File.read("/proc/loadavg").split.first(3).join(" ")
  end

  def run
    abort_unless_ready
    puts "server: #{RealIngestionServer.binary}"
    puts "requests per variant and round: #{REQUESTS} in #{SLICES} interleaved runs of ab -k -c1, " \
         "warm-up: #{WARMUP}, rounds: #{ROUNDS}, " \
         "variants: #{VARIANTS.join(', ')}, actions: #{ACTIONS.join(', ')}"
    generate_app
    server = RealIngestionServer::Instance.new.start
    apps = []
    begin
      apps = VARIANTS.map { |variant| App.new(variant, server).start }
      puts "load average at start: #{load_average}"
      apps.each { |app| ACTIONS.each { |action| app.drive(action, WARMUP) } }
      settle(apps)
      results = Hash.new { |hash, key| hash[key] = [] }
      per_slice = (REQUESTS.to_f / SLICES).ceil
      ROUNDS.times do |round|
        ACTIONS.each do |action|
          # Every variant's worker is read over the whole round, which interleaves
          # SLICES short runs of each, starting with another variant each time: the
          # machine's other load falls on all of them alike.
          before = apps.to_h { |app| [app, app.snapshot] }
          SLICES.times { |slice| apps.rotate(round + slice).each { |app| app.drive(action, per_slice) } }
          settle(apps)
          apps.each do |app|
            result = app.since(before[app], per_slice * SLICES)
            results[[app.variant, action]] << result
            puts format("round %d %-12s %-24s %7.0f µs CPU/request (delivery threads %5.1f), %s entries/request",
                        round + 1, action, app.variant, result[:cpu], result[:delivery],
                        result[:entries] ? format("%.2f", result[:entries]) : "-")
          end
        end
      end
      puts "load average at end: #{load_average}"
      ACTIONS.each { |action| print_table(action, results) }
    ensure
      apps.each(&:stop)
      server.stop
    end
  end
end

RailsCostBenchmark.run if $PROGRAM_NAME == __FILE__
