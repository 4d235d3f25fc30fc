# frozen_string_literal: true

require "spec_helper"
require "open3"
require "net/http"
require_relative "../support/real_ingestion_server"
require_relative "../support/child_process"
require_relative "../support/polling"

# The path README's Rails section gives a newcomer, on an app made by Debian's
# `rails new` (6.1, offline: --minimal and no bundle/webpack/sprockets), with the gem
# from this checkout as a `path:` gem (compiled here by `rake compile`, as README
# says), the install generator's initializer as it is, and `bin/rails` commands
# against the real ingestion server. Generated into a temporary directory once per
# run (a few seconds).
RSpec.describe "A `rails new` app following README", :end_to_end do
  before(:all) do
    reason = RealIngestionServer.unavailable_reason
    reason ||= "the native extension is not built (rake compile)" unless LogIngestion::Native.available?
    skip "rails new specs skipped: #{reason}" if reason

    @server = RealIngestionServer.shared
    @dir = Dir.mktmpdir("li-rails-new")
    @app = File.join(@dir, "shop")
    run!(RbConfig.ruby, Gem.bin_path("railties", "rails"), "new", @app, "--minimal", "--skip-bundle", "--skip-git",
         "--skip-webpack-install", "--skip-javascript", "--skip-bootsnap", "--skip-sprockets", "--skip-spring",
         "--skip-listen", "--quiet", chdir: @dir)
    # Debian packages the frameworks, not the `rails` meta gem: name them instead.
    File.write(File.join(@app, "Gemfile"), <<~GEMFILE)
      source "https://rubygems.org"
      gem "railties", "~> 6.1.7"
      gem "actionpack", "~> 6.1.7"
      gem "activerecord", "~> 6.1.7"
      gem "activejob", "~> 6.1.7"
      gem "sqlite3"
      gem "puma"
      gem "log_ingestion", path: #{RealIngestionServer::ROOT.inspect}
    GEMFILE
    run!("bundle", "install", "--local", "--quiet", chdir: @app)
    run!(RbConfig.ruby, "bin/rails", "generate", "log_ingestion:install", chdir: @app)
  end

  after(:all) do
    FileUtils.remove_entry(@dir) if @dir
  end

  # The app's environment: its own Gemfile, nothing of this process's Bundler setup.
  def app_env(service, key: @server.api_key)
    { "BUNDLE_GEMFILE" => File.join(@app, "Gemfile"), "RUBYOPT" => nil, "RUBYLIB" => nil, "BUNDLER_SETUP" => nil,
      "LOG_INGESTION_URL" => @server.url, "LOG_INGESTION_API_KEY" => key, "LOG_INGESTION_SERVICE" => service,
      "DATABASE_URL" => nil, "RAILS_ENV" => "development" }
  end

  def run!(*argv, chdir:, env: {})
    out, err, status = Open3.capture3(env.merge("BUNDLE_GEMFILE" => env["BUNDLE_GEMFILE"] || File.join(chdir, "Gemfile")),
                                      *argv, chdir: chdir)
    raise "#{argv.join(' ')} failed:\n#{out}\n#{err}" unless status.success? || argv.include?("new")

    [out, err, status]
  end

  def rails(service, *args, key: @server.api_key)
    Open3.capture3(app_env(service, key: key), RbConfig.ruby, "bin/rails", *args, chdir: @app)
  end

  def rows(sql)
    @server.rows(sql)
  end

  def quote(text)
    RealIngestionServer.quote(text)
  end

  it "generated the initializer README describes" do
    text = File.read(File.join(@app, "config/initializers/log_ingestion.rb"))
    expect(text).to include("config.log_ingestion.broadcast_logger = true")
  end

  it "logs:test with a wrong key prints the server's 401, and no command logs a startup entry" do
    service = "rails-new-test-#{SecureRandom.hex(4)}"
    out, err, status = rails(service, "logs:test", key: "not-the-key")

    expect(status).not_to be_success
    expect(out + err).to match(/did NOT arrive \(last error: .*HTTP 401.*Invalid API key/)

    _, err, status = rails(service, "runner", 'LogIngestionClient.info("from runner")')
    expect(status).to be_success, err
    messages = rows("SELECT message FROM logs WHERE service = #{quote(service)}")
    expect(messages).to eq(["from runner"])
  end

  it "serves under Puma in cluster mode with preload_app!: no thread of ours at boot, a 404 at WARN, no DEBUG" do
    puma_config = File.join(@app, "config/puma.rb")
    text = File.read(puma_config)
    File.write(puma_config, text.sub(/^# workers .*$/, "workers 2").sub(/^# preload_app!$/, "preload_app!"))
    service = "rails-new-puma-#{SecureRandom.hex(4)}"
    port = RealIngestionServer.free_port
    env = app_env(service)
    puma = ChildProcess.new(env, ["sh", "-c", "cd '#{@app}' && exec '#{RbConfig.ruby}' bin/rails server -p #{port} -b 127.0.0.1"],
                            File.join(@dir, "#{service}.log"))
    begin
      Polling.wait_until(timeout: 60, interval: 0.2, what: "the rails new app on #{port}") do
        raise "rails server exited:\n#{puma.log}" unless puma.alive?

        RealIngestionServer.http_ok?("http://127.0.0.1:#{port}/")
      end
      missing = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/no/such/page"))
    ensure
      puma.stop
    end

    expect(puma.log).to include("Puma starting in cluster mode", "Preloading application")
    expect(puma.log.lines.grep(/! #<Thread/)).to all(include("concurrent-ruby"))
    expect(puma.log).not_to include("log_ingestion-reporter")
    expect(missing.code).to eq("404")
    entries = rows("SELECT json_build_array(level, message, metadata->>'request_id')::text FROM logs " \
                   "WHERE service = #{quote(service)}").map { |row| JSON.parse(row) }
    # The 404 is one WARN entry with its request id; Rails' own lines stay in the log file.
    routing = entries.select { |_, message| message.include?("RoutingError") }
    expect(routing.map(&:first)).to eq(["WARN"])
    expect(routing.first.last).to be_a(String)
    expect(entries.count { |_, _, id| id == routing.first.last }).to eq(1)
    expect(entries.map(&:first)).not_to include("DEBUG", "FATAL")
    expect(entries.map { |_, message| message }.grep(/\A(Started|Processing|Completed) /)).to eq([])
    expect(entries.count { |_, message| message == "Rails application started" }).to eq(1)
  end

  it "writes one line per request to the app's log, instead of Rails' own request lines" do
    service = "rails-new-lines-#{SecureRandom.hex(4)}"
    port = RealIngestionServer.free_port
    log_file = File.join(@app, "log/development.log")
    File.write(log_file, "")
    puma = ChildProcess.new(app_env(service), ["sh", "-c", "cd '#{@app}' && exec '#{RbConfig.ruby}' bin/rails server -p #{port} -b 127.0.0.1"],
                            File.join(@dir, "#{service}.log"))
    begin
      Polling.wait_until(timeout: 60, interval: 0.2, what: "the rails new app on #{port}") do
        raise "rails server exited:\n#{puma.log}" unless puma.alive?

        RealIngestionServer.http_ok?("http://127.0.0.1:#{port}/")
      end
      response = Net::HTTP.get_response(URI("http://127.0.0.1:#{port}/?page=2"))
      Polling.wait_until(timeout: 30, interval: 0.2, what: "the request entry of GET /?page=2") do
        rows("SELECT message FROM logs WHERE service = #{quote(service)} AND metadata->>'path' = '/?page=2'").any?
      end
    ensure
      puma.stop
    end

    expect(response.code).to eq("200")
    lines = File.readlines(log_file).grep(%r{GET /\?page=2})
    expect(lines.size).to eq(1), File.read(log_file)
    expect(lines.first).to match(%r{\AGET /\?page=2 200 \d+\.\d+ms controller=Rails::WelcomeController#index request_id=\S+\n\z})
    expect(File.readlines(log_file).grep(/\A(Started|Processing by|Completed|  Rendered|  Parameters)/)).to eq([])
    requests = rows("SELECT message FROM logs WHERE service = #{quote(service)} AND metadata->>'path' = '/?page=2'")
    expect(requests).to eq(["GET / 200"])
  end
end
