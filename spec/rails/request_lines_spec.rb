# frozen_string_literal: true

require "open3"
require_relative "support/rails_app"

# What a request leaves in the Rails log with README's setup (the spec app's): one line
# instead of Rails' own request lines, and Rails' lines back with :keep.
RSpec.describe LogIngestion::RequestLines do
  def log_lines
    LogIngestionTestApp.log_output.string.lines.map(&:chomp)
  end

  before do
    LogIngestionTestApp.log_output.truncate(0)
    LogIngestionTestApp.log_output.rewind
  end

  def attached(klass)
    ActiveSupport::LogSubscriber.log_subscribers.count { |subscriber| subscriber.instance_of?(klass) }
  end

  def listening(klass, event)
    ActiveSupport::Notifications.notifier.listeners_for(event)
                                .count { |listener| listener.instance_variable_get(:@delegate).instance_of?(klass) }
  end

  it "writes exactly one line to the Rails log for a trivial GET, and sends one entry" do
    get "/widgets/pid", {}, "HTTP_X_REQUEST_ID" => "lines-req-1"

    expect(last_response.status).to eq(200)
    expect(log_lines.size).to eq(1), log_lines.inspect
    expect(log_lines.first).to match(
      %r{\A\[lines-req-1\] GET /widgets/pid 200 \d+\.\d+ms controller=WidgetsController#pid request_id=lines-req-1\z}
    )
    expect(entries.map { |e| e[:message] }).to eq(["GET /widgets/pid 200"])
  end

  it "writes the path with its query string filtered, as the request entry has it" do
    get "/widgets/pid?page=2&password=hunter2"

    line = log_lines.grep(%r{GET /widgets/pid}).first
    expect(line).to include("GET /widgets/pid?page=2&password=[FILTERED] 200 ")
    expect(LogIngestionTestApp.log_output.string).not_to include("hunter2")
  end

  it "names the exception of a request that raised" do
    env_config = Rails.application.env_config
    saved = env_config["action_dispatch.show_exceptions"]
    env_config["action_dispatch.show_exceptions"] = true
    get "/widgets/boom"

    expect(last_response.status).to eq(500)
    expect(log_lines.grep(%r{GET /widgets/boom 500 })).to contain_exactly(
      a_string_including("controller=WidgetsController#boom error=WidgetsController::Boom")
    )
  ensure
    env_config["action_dispatch.show_exceptions"] = saved
  end

  it "writes nothing when the Rails logger does not write INFO" do
    level = Rails.logger.level
    Rails.logger.level = :warn
    get "/widgets/pid"

    expect(last_response.status).to eq(200)
    expect(log_lines).to eq([])
    expect(entries.map { |e| e[:message] }).to eq(["GET /widgets/pid 200"])
  ensure
    Rails.logger.level = level
  end

  it "never sends its line to the service, also with logger_level :info" do
    RailsAppHelpers.forwarder.forward_level = :info
    get "/widgets/pid"

    expect(log_lines.grep(%r{GET /widgets/pid 200 }).size).to eq(1)
    expect(entries.map { |e| e[:message] }).to eq(["GET /widgets/pid 200"])
  end

  it "leaves Rails' Started, Processing, Parameters and Completed lines out" do
    get "/widgets/pid?page=2"

    expect(log_lines.grep(/Started |Processing by|Parameters:|Completed /)).to eq([])
  end

  it "puts Rails' own request lines back, and writes no line of its own, after keep" do
    described_class.keep
    get "/widgets/pid?page=2", {}, "HTTP_X_REQUEST_ID" => "lines-keep"

    expect(log_lines.map { |line| line[/\A\[lines-keep\] (Started|Processing by|  Parameters:|Completed)/, 1] }.compact)
      .to eq(["Started", "Processing by", "  Parameters:", "Completed"])
    expect(log_lines.grep(/ms controller=/)).to eq([])
    expect(entries.map { |e| e[:message] }).to eq(["GET /widgets/pid 200"])
  ensure
    described_class.replace
  end

  it "detaches Rails' request line subscribers once, and keep attaches each once again" do
    2.times { described_class.replace }
    expect([attached(ActionController::LogSubscriber), attached(ActionView::LogSubscriber)]).to eq([0, 0])
    expect(listening(ActionController::LogSubscriber, "process_action.action_controller")).to eq(0)

    2.times { described_class.keep }
    expect([attached(ActionController::LogSubscriber), attached(ActionView::LogSubscriber)]).to eq([1, 1])
    expect(listening(ActionController::LogSubscriber, "process_action.action_controller")).to eq(1)
    expect(listening(ActionView::LogSubscriber, "render_template.action_view")).to eq(1)
  ensure
    described_class.replace
  end

  it "takes Rails::Rack::Logger's place in the middleware stack, with its log tags" do
    middleware = Rails.application.middleware
    ours = middleware.find { |m| m.klass == LogIngestion::RequestLines::RackLogger }

    expect(middleware.map(&:klass)).not_to include(Rails::Rack::Logger)
    expect(ours.args).to eq([[:request_id]])
  end

  it "refuses a rails_request_lines setting other than :replace or :keep" do
    expect(described_class.setting(nil)).to eq(:replace)
    expect(described_class.setting("keep")).to eq(:keep)
    expect { described_class.setting(:off) }.to raise_error(LogIngestion::ConfigurationError, /:replace or :keep/)
  end

  it "keeps Rails' lines and Rails::Rack::Logger in an app with config.log_ingestion.rails_request_lines = :keep" do
    script = <<~RUBY
      require "./spec/rails/app/config/environment"
      require "rack/mock"
      Rack::MockRequest.new(Rails.application).get("/widgets/pid", "HTTP_X_REQUEST_ID" => "keep-app")
      print({ loggers: Rails.application.middleware.map(&:klass).grep(Class).select { |k| k <= Rails::Rack::Logger },
              subscribed: ActiveSupport::LogSubscriber.log_subscribers.count { |s| s.instance_of?(ActionController::LogSubscriber) },
              lines: LogIngestionTestApp.log_output.string.lines.grep(/keep-app/).map { |l| l.split[1] } }.inspect)
    RUBY
    env = { "LOG_INGESTION_TEST_RAILS_REQUEST_LINES" => "keep",
            "LOG_INGESTION_TEST_DB" => File.join(Dir.tmpdir, "log_ingestion_keep_#{Process.pid}.sqlite3") }
    out, err, status = Open3.capture3(env, RbConfig.ruby, "-Ilib", "-e", script, chdir: File.expand_path("../..", __dir__))

    expect(status).to be_success, err
    expect(out).to eq({ loggers: [Rails::Rack::Logger], subscribed: 1,
                        lines: %w[Started Processing Completed] }.inspect)
  end
end
