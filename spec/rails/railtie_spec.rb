# frozen_string_literal: true

require_relative "support/rails_app"
require "open3"
require "rails/generators"
require "rake"

RSpec.describe LogIngestion::Railtie do
  let(:options) do
    ActiveSupport::OrderedOptions.new.tap do |o|
      o.test_mode = true
      o.request_logging = true
    end
  end

  around do |example|
    saved_env = ENV.to_h.slice("LOG_INGESTION_URL", "LOG_INGESTION_API_KEY", "LOG_INGESTION_SERVICE")
    saved_credentials = Rails.application.credentials
    Dir.mktmpdir("li-credentials") do |dir|
      @credentials_dir = dir
      example.run
    end
  ensure
    %w[LOG_INGESTION_URL LOG_INGESTION_API_KEY LOG_INGESTION_SERVICE].each { |k| ENV.delete(k) }
    ENV.update(saved_env)
    Rails.application.credentials = saved_credentials
    described_class.configure_client(Rails.application.config.log_ingestion)
  end

  # Where the configured client sends: [api_url, api_key, service].
  def client_destination
    [LogIngestionClient.api_url, LogIngestionClient.api_key, LogIngestionClient.service]
  end

  def use_credentials(url:, api_key:, service:)
    key_path = File.join(@credentials_dir, "master.key")
    File.write(key_path, ActiveSupport::EncryptedConfiguration.generate_key)
    credentials = ActiveSupport::EncryptedConfiguration.new(
      config_path: File.join(@credentials_dir, "credentials.yml.enc"), key_path: key_path,
      env_key: "LOG_INGESTION_SPEC_NO_SUCH_KEY", raise_if_missing_key: true
    )
    credentials.write({ "log_ingestion" => { "url" => url, "api_key" => api_key, "service" => service } }.to_yaml)
    Rails.application.credentials = credentials
  end

  it "takes url, key and service from Rails credentials when nothing else sets them" do
    use_credentials(url: "http://creds.test", api_key: "creds-key", service: "creds-svc")
    described_class.configure_client(options)

    expect(client_destination).to eq(["http://creds.test", "creds-key", "creds-svc"])
  end

  it "prefers ENV over credentials" do
    use_credentials(url: "http://creds.test", api_key: "creds-key", service: "creds-svc")
    ENV["LOG_INGESTION_URL"] = "http://env.test"
    ENV["LOG_INGESTION_SERVICE"] = "env-svc"
    described_class.configure_client(options)

    expect(client_destination).to eq(["http://env.test", "creds-key", "env-svc"])
  end

  it "prefers config.log_ingestion over ENV and credentials" do
    use_credentials(url: "http://creds.test", api_key: "creds-key", service: "creds-svc")
    ENV["LOG_INGESTION_URL"] = "http://env.test"
    options.api_url = "http://explicit.test"
    options.service = "explicit-svc"
    described_class.configure_client(options)

    expect([LogIngestionClient.api_url, LogIngestionClient.service]).to eq(["http://explicit.test", "explicit-svc"])
  end

  it "passes config.log_ingestion.max_retry_elapsed to the client, validated" do
    options.test_mode = true
    options.max_retry_elapsed = 42
    described_class.configure_client(options)
    expect(LogIngestionClient.max_retry_elapsed).to eq(42)

    options.max_retry_elapsed = -1
    expect { described_class.configure_client(options) }.to raise_error(LogIngestion::ConfigurationError, /max_retry_elapsed/)
  end

  it "rejects a config.log_ingestion setting that does not exist" do
    options.batch_sise = 10

    expect { described_class.configure_client(options) }.to raise_error(LogIngestion::ConfigurationError, /batch_sise/)
  end

  describe "metadata_filter" do
    let(:secret_metadata) { { password: "x", nested: { token: "t" }, user_id: 1 } }
    let(:filtered_metadata) { { "password" => "[FILTERED]", "nested" => { "token" => "[FILTERED]" }, "user_id" => 1 } }

    def metadata_of_app_call
      LogIngestionClient.clear_recorded_entries
      LogIngestionClient.info("Signed in", secret_metadata)
      entry_with("Signed in")[:metadata]
    end

    it "masks config.filter_parameters in the metadata app code passes to LogIngestionClient by default" do
      described_class.configure_client(options)

      expect(metadata_of_app_call).to eq(filtered_metadata)
    end

    it "masks them in send_log entries too" do
      described_class.configure_client(options)
      LogIngestionClient.send_log({ message: "direct", metadata: secret_metadata })

      expect(entry_with("direct")[:metadata]).to eq(filtered_metadata)
    end

    it "cuts a Hash that contains itself at the cycle and still masks it" do
      described_class.configure_client(options)
      looped = { password: "x" }
      looped[:self] = looped
      LogIngestionClient.info("looped", looped)

      expect(entry_with("looped")[:metadata]).to eq("password" => "[FILTERED]", "self" => "[cycle]")
    end

    it "leaves metadata unfiltered with config.log_ingestion.metadata_filter = false" do
      options.metadata_filter = false
      described_class.configure_client(options)

      expect(metadata_of_app_call).to include("password" => "x")
    end

    # The guide's initializer calls LogIngestionClient.configure in its own
    # after_initialize, which runs after the glue's and builds a fresh configuration.
    it "keeps masking when the app configures the client again afterwards" do
      described_class.configure_client(options)
      LogIngestionClient.configure { |config| config.test_mode = true }

      expect(metadata_of_app_call).to eq(filtered_metadata)
    end

    it "keeps metadata_filter = false when the app configures the client again afterwards" do
      options.metadata_filter = false
      described_class.configure_client(options)
      LogIngestionClient.configure { |config| config.test_mode = true }

      expect(metadata_of_app_call).to include("password" => "x")
    end

    it "refuses a config.log_ingestion.metadata_filter that is neither false nor callable" do
      options.metadata_filter = "password"

      expect { described_class.configure_client(options) }
        .to raise_error(LogIngestion::ConfigurationError, /metadata_filter must be false or respond to #call/)
    end


    describe "on a Rails request entry (ControllerLogging's params)" do
      def params_of_request
        LogIngestionClient.clear_recorded_entries
        get "/concern", { "q" => "gears", "password" => "hunter2" }
        entries.find { |e| e[:message] == "HTTP Request" && e[:metadata]["controller"] == "ConcernController" }
          .fetch(:metadata).fetch("params")
      end

      it "masks them by default" do
        described_class.configure_client(options)

        expect(params_of_request).to eq("q" => "gears", "password" => "[FILTERED]")
      end

      it "leaves them unfiltered with config.log_ingestion.metadata_filter = false" do
        options.metadata_filter = false
        described_class.configure_client(options)

        expect(params_of_request).to eq("q" => "gears", "password" => "hunter2")
      end
    end

    it "uses an explicit config.log_ingestion.metadata_filter instead of filter_parameters" do
      options.metadata_filter = ->(metadata) { metadata.except(:user_id) }
      described_class.configure_client(options)

      expect(metadata_of_app_call).to eq("password" => "x", "nested" => { "token" => "t" })
    end

    it "keeps the metadata_filter of a client the app configured itself" do
      LogIngestionClient.configure do |config|
        config.test_mode = true
        config.metadata_filter = ->(metadata) { metadata.merge(password: "own") }
      end
      described_class.configure_client(ActiveSupport::OrderedOptions.new)

      expect(metadata_of_app_call).to include("password" => "own", "nested" => { "token" => "t" })
    end

    it "gives a client the app configured itself without a filter the default one" do
      LogIngestionClient.configure { |config| config.test_mode = true }
      described_class.configure_client(ActiveSupport::OrderedOptions.new)

      expect(metadata_of_app_call).to eq(filtered_metadata)
    end
  end

  it "writes the startup entry with environment, Rails and Ruby versions" do
    described_class.start(Rails.application)

    expect(entry_with("Rails application started")[:metadata])
      .to include("environment" => "test", "version" => Rails.version, "ruby_version" => RUBY_VERSION)
  end

  {
    "rails runner" => -> { stub_const("Rails::Command::RunnerCommand", Class.new) },
    "rails console" => -> { stub_const("Rails::Command::ConsoleCommand", Class.new) },
    "a generator" => -> { stub_const("Rails::Command::GenerateCommand", Class.new) },
    "a bin/rails rake task" => -> { stub_const("Rails::Command::RakeCommand", Class.new) },
    "plain rake" => -> { allow(Rake.application).to receive(:top_level_tasks).and_return(["db:migrate"]) }
  }.each do |command, arrange|
    it "writes no startup entry from #{command}" do
      instance_exec(&arrange)
      described_class.start(Rails.application)

      expect(entries_with("Rails application started")).to be_empty
    end
  end

  it "writes no startup entry with config.log_ingestion.startup_entry = false" do
    Rails.application.config.log_ingestion.startup_entry = false
    described_class.start(Rails.application)

    expect(entries_with("Rails application started")).to be_empty
  ensure
    Rails.application.config.log_ingestion.startup_entry = nil
  end

  it "subscribes only config.log_ingestion.subscribers, with config.log_ingestion.slow_query_ms as threshold" do
    Rails.application.config.log_ingestion.subscribers = %i[sql]
    Rails.application.config.log_ingestion.slow_query_ms = 0
    described_class.start(Rails.application)
    get "/widgets"

    expect(LogIngestion::Subscribers.subscribed).to eq(%i[sql])
    expect(entries_with("Slow SQL query").map { |e| e[:metadata]["threshold_ms"] }.uniq).to eq([0])
    expect(entries_with("Action processed")).to be_empty
  ensure
    Rails.application.config.log_ingestion.subscribers = nil
    Rails.application.config.log_ingestion.slow_query_ms = nil
  end

  it "subscribes nothing with config.log_ingestion.subscribers = false" do
    Rails.application.config.log_ingestion.subscribers = false
    described_class.start(Rails.application)

    expect(LogIngestion::Subscribers.subscribed).to eq([])
  ensure
    Rails.application.config.log_ingestion.subscribers = nil
  end

  it "inserts RequestLogging inside DebugExceptions with config.log_ingestion.request_logging, " \
     "skipping request_logging_skip_paths instead of the defaults" do
    script = <<~RUBY
      require "./spec/rails/app/config/application"
      Rails.application.config.log_ingestion.request_logging = true
      Rails.application.config.log_ingestion.request_logging_skip_paths = %w[/widgets]
      require "./spec/rails/app/config/environment"
      require "rack/mock"
      requests = lambda do |path|
        LogIngestionClient.clear_recorded_entries
        Rack::MockRequest.new(Rails.application).get(path)
        LogIngestionClient.recorded_entries.count { |e| e[:message] == "HTTP Request" }
      end
      stack = Rails.application.middleware.map(&:klass)
      inside = stack.index(LogIngestion::RequestLogging) == stack.index(ActionDispatch::DebugExceptions) + 1
      print({ widgets: requests.call("/widgets"), assets: requests.call("/assets/app.css"), inside: inside }.inspect)
    RUBY
    env = { "LOG_INGESTION_URL" => nil, "LOG_INGESTION_API_KEY" => nil,
            "LOG_INGESTION_TEST_DB" => File.join(@credentials_dir, "skip.sqlite3") }
    out, err, status = Open3.capture3(env, RbConfig.ruby, "-Ilib", "-e", script, chdir: File.expand_path("../..", __dir__))

    expect(status).to be_success, err
    expect(out).to eq({ widgets: 0, assets: 1, inside: true }.inspect)
  end

  it "inserts RequestContext right after RequestId and no RequestLogging by default" do
    stack = Rails.application.middleware.map(&:klass)

    expect(stack.index(LogIngestion::RequestContext)).to eq(stack.index(ActionDispatch::RequestId) + 1)
    expect(stack).not_to include(LogIngestion::RequestLogging)
  end

  it "subscribes the request entries and no old subscriber by default" do
    described_class.start(Rails.application)

    expect(LogIngestion::RequestEntries.subscribed?).to be(true)
    expect(LogIngestion::Subscribers.subscribed).to eq([])
  end

  it "registers RequestContext's interceptor with DebugExceptions once" do
    interceptors = ActionDispatch::DebugExceptions.interceptors

    expect(interceptors.count(LogIngestion::RequestContext.method(:intercept))).to eq(1)
  end

  it "warns once and installs nothing when no URL, key or test mode is set anywhere" do
    script = <<~RUBY
      require "./spec/rails/app/config/environment"
      require "rack/mock"
      Rack::MockRequest.new(Rails.application).get("/widgets")
      Rails.logger.info("ignored")
      print({ subscribed: LogIngestion::Subscribers.subscribed, configured: LogIngestionClient.configured?,
              entries: LogIngestionClient.recorded_entries.size }.inspect)
    RUBY
    env = { "LOG_INGESTION_TEST_UNCONFIGURED" => "1", "LOG_INGESTION_URL" => nil, "LOG_INGESTION_API_KEY" => nil,
            "LOG_INGESTION_TEST_DB" => File.join(@credentials_dir, "unconfigured.sqlite3") }
    out, err, status = Open3.capture3(env, RbConfig.ruby, "-Ilib", "-e", script, chdir: File.expand_path("../..", __dir__))

    expect(status).to be_success, err
    expect(out).to eq({ subscribed: [], configured: false, entries: 0 }.inspect)
    expect(err.scan("log_ingestion: not configured").size).to eq(1)
  end

  describe "rails generate log_ingestion:install" do
    it "writes a commented initializer that names only real settings" do
      Rails::Generators.invoke("log_ingestion:install", ["--quiet"], destination_root: @credentials_dir)
      path = File.join(@credentials_dir, "config/initializers/log_ingestion.rb")
      text = File.read(path)

      expect(RubyVM::InstructionSequence.compile(text, path)).to be_a(RubyVM::InstructionSequence)
      expect(text.lines.count { |l| l.lstrip.start_with?("#") }).to be > 20
      settings = text.scan(/config\.log_ingestion\.(\w+)\s*=/).flatten.map(&:to_sym).uniq
      known = described_class::RAILS_SETTINGS + LogIngestion::Configuration::DEFAULTS.keys
      expect(settings).to include(:api_url, :request_logging, :subscribers, :slow_query_ms, :broadcast_logger)
      expect(settings - known).to eq([])
    end

    # docs/rails.md's settings table, README's few lines and the generated file say the same things.
    it "writes the settings docs/rails.md documents, with README's few lines on" do
      Rails::Generators.invoke("log_ingestion:install", ["--quiet"], destination_root: @credentials_dir)
      text = File.read(File.join(@credentials_dir, "config/initializers/log_ingestion.rb"))
      root = File.expand_path("../..", __dir__)
      readme = File.read(File.join(root, "README.md"))
      rails_section = readme[/^## Rails\n.*?(?=^## )/m]

      generated = text.scan(/config\.log_ingestion\.(\w+)\s*=/).flatten.uniq.sort
      rails_doc = File.read(File.join(root, "docs/rails.md"))
      table = rails_doc.scan(/^\| `config\.log_ingestion\.(\w+)`((?:, `\w+`)*)/).flat_map do |first, more|
        [first, *more.scan(/`(\w+)`/).flatten]
      end
      client_table = File.read(File.join(root, "docs/gem.md")).scan(/^\| `(\w+)`(?:, `(\w+)`)*/).flatten.compact
      expect(table.sort - generated).to eq([]) # every Rails setting docs/rails.md documents is in the file
      expect(generated - table - client_table).to eq([]) # and the file sets nothing the docs do not document
      expect((described_class::RAILS_SETTINGS.map(&:to_s) - table)).to eq([])

      on_in_file = text.lines.grep(/^\s*config\.log_ingestion\./).map { |l| l.strip.squeeze(" ") }
      on_in_readme = rails_section[/```ruby\nRails\.application\.configure do\n(.*?)^end/m, 1]
                     .lines.map { |l| l.strip.squeeze(" ") }
      expect(on_in_file).to eq(on_in_readme)
      expect(text).not_to match(/^\s*#.*on_error.*Rails\.logger\.\w+\(/)
    end
  end

  describe "rake tasks" do
    before(:all) { Rails.application.load_tasks unless Rake::Task.task_defined?("logs:test") }

    it "logs:test sends a test entry now and says it arrived" do
      expect { Rake::Task["logs:test"].execute }.to output(/accepted/).to_stdout

      expect(entry_with("Test log from Rails (rails logs:test)")[:metadata]).to include("test" => true)
    end

    it "logs:stats prints the client's counters and says they are the rake process's own" do
      LogIngestionClient.info("counted")

      expect { Rake::Task["logs:stats"].execute }
        .to output(/counters of this rake process \(pid #{Process.pid}\) only.*StatsEndpoint.*^enqueued\s+\d+$/m)
        .to_stdout
    end
  end

  describe "LogIngestion::StatsEndpoint" do
    let(:endpoint_class) { LogIngestion::StatsEndpoint }

    it "answers GET with this process's counters, pid and service as JSON" do
      LogIngestionClient.info("counted")
      status, headers, body = endpoint_class.new.call("REQUEST_METHOD" => "GET")

      expect([status, headers["Content-Type"]]).to eq([200, "application/json"])
      expect(JSON.parse(body.join)).to include("pid" => Process.pid, "service" => LogIngestionClient.service,
                                               "enqueued" => a_kind_of(Integer), "last_error" => nil)
    end

    it "answers other methods 405 and never raises" do
      expect(endpoint_class.new.call("REQUEST_METHOD" => "POST").first).to eq(405)
      failing = Object.new.tap { |o| o.define_singleton_method(:stats) { raise "boom" } }
      expect(endpoint_class.new(client: failing).call("REQUEST_METHOD" => "GET").first).to eq(500)
    end
  end
end
