# frozen_string_literal: true

require_relative "support/rails_app"

# Every path that reports an exception sends the same `exception: {class, message, backtrace}`,
# its backtrace cleaned by Rails.backtrace_cleaner (app frames relative to Rails.root, gem
# frames as "name (version) path") and bounded.
RSpec.describe "the exception metadata of every path" do
  def show_exceptions
    config = Rails.application.env_config
    saved = config["action_dispatch.show_exceptions"]
    config["action_dispatch.show_exceptions"] = true
    yield
  ensure
    config["action_dispatch.show_exceptions"] = saved
  end

  # The `exception` metadata of the one entry named +message+, after a JSON round trip.
  def exception_of(message)
    JSON.parse(JSON.generate(entry_with(message)[:metadata]))["exception"]
  end

  def expect_shape(exception, klass, message, first_frame)
    expect(exception.keys).to match_array(%w[class message backtrace])
    expect(exception).to include("class" => klass, "message" => message)
    frames = exception["backtrace"]
    expect(frames).to all(be_a(String))
    expect(frames.first).to match(first_frame)
    expect(frames.join("\n")).not_to include(Rails.root.to_s)
    expect(frames).to include(a_string_matching(/\A[\w-]+ \([\d.]+\) lib\//)) # a gem frame, cleaned
    expect(frames.size).to be <= LogIngestion::ExceptionDetails::BACKTRACE_LINES
  end

  let(:controller_frame) { %r{\Aapp/controllers/widgets_controller\.rb:\d+:in `boom'\z} }
  let(:job_frame) { %r{\Aapp/jobs/failing_job\.rb:\d+:in `perform'\z} }

  it "is the same from the middleware's exception entry" do
    show_exceptions { get "/widgets/boom" }

    exception = exception_of("WidgetsController::Boom: widget exploded")
    expect_shape(exception, "WidgetsController::Boom", "widget exploded", controller_frame)
    # The gem's own frames (here a checkout, not an installed gem) read like a gem's.
    own = "log_ingestion (#{LogIngestion::VERSION}) lib/log_ingestion/rails/request_context.rb:"
    expect(exception["backtrace"]).to include(a_string_starting_with(own))
    expect(exception["backtrace"].join("\n")).not_to include(File.expand_path("../../lib", __dir__))
  end

  it "is the same from RequestLogging's Request error" do
    middleware = LogIngestion::RequestLogging.new(WidgetsController.action(:boom))
    expect { middleware.call(Rack::MockRequest.env_for("/widgets/boom")) }.to raise_error(WidgetsController::Boom)

    expect_shape(exception_of("Request error"), "WidgetsController::Boom", "widget exploded", controller_frame)
  end

  it "is the same from the controller concern's Request failed" do
    expect { get "/concern/boom" }.to raise_error(ArgumentError)

    expect_shape(exception_of("Request failed"), "ArgumentError", "concern boom",
                 %r{\Aapp/controllers/concern_controller\.rb:\d+:in `boom'\z})
  end

  it "is the same from the job concern, the perform subscriber and the job's exception entry" do
    LogIngestion::Subscribers.subscribe(only: %i[perform])
    expect { LoggedFailingJob.perform_later(9) }.to raise_error(FailingJob::Failure)

    concern, subscriber = entries_with("Job failed").map { |e| JSON.parse(JSON.generate(e[:metadata]))["exception"] }
    own = exception_of("FailingJob::Failure: job for user 9 failed")
    [concern, subscriber, own].each do |exception|
      expect_shape(exception, "FailingJob::Failure", "job for user 9 failed", job_frame)
    end
    expect([concern, subscriber].uniq).to eq([own])
  end

  it "is the same from Rails.logger.error(exception)" do
    error = begin
      raise WidgetsController::Boom, "logged by hand"
    rescue WidgetsController::Boom => e
      Rails.logger.error(e)
      e
    end

    entry = entries.find { |e| e[:metadata]["logger"] == "rails" && e[:metadata]["exception"] }
    exception = JSON.parse(JSON.generate(entry[:metadata]))["exception"]
    expect(exception.keys).to match_array(%w[class message backtrace])
    expect(exception).to include("class" => "WidgetsController::Boom", "message" => "logged by hand")
    expect(exception["backtrace"]).to eq(LogIngestion::ExceptionDetails.call(error)[:backtrace])
    expect(exception["backtrace"].first).to start_with("#{__FILE__}:")
  end

  it "is the same from Rails' error reporter (Rails 7's Rails.error, here called as it calls its subscribers)" do
    subscriber = LogIngestion::ErrorSubscriber.new
    error = begin
      WidgetsController.new.boom
    rescue WidgetsController::Boom => e
      e
    end
    subscriber.report(error, handled: true, severity: :warning, source: "application",
                             context: { user_id: 42, order: Object.new, note: "x" * 1_000 })
    subscriber.report(error, handled: true, severity: :warning) # the same exception again: not sent twice

    entry = entry_with("WidgetsController::Boom: widget exploded")
    expect(entry[:level]).to eq("WARN")
    metadata = JSON.parse(JSON.generate(entry[:metadata]))
    expect(metadata).to include("kind" => "exception", "handled" => true, "severity" => "warning",
                                "source" => "application")
    expect(metadata["context"].keys).to match_array(%w[user_id note])
    expect(metadata["context"]["note"].bytesize).to be <= LogIngestion::ErrorSubscriber::CONTEXT_VALUE_BYTES + 3
    expect_shape(metadata["exception"], "WidgetsController::Boom", "widget exploded", controller_frame)
  end

  it "is subscribed to Rails.error only where Rails has one" do
    expect(LogIngestion::ErrorSubscriber.subscribe).to eq(Rails.respond_to?(:error))
  end

  it "masks the message and bounds a hostile backtrace: 10,000 frames, long frames, invalid UTF-8" do
    error = RuntimeError.new("password=hunter2 \xFF\xFE broke".b)
    error.set_backtrace(Array.new(10_000) { |i| "/x/#{'deep/' * 200}file_#{i}.rb:#{i}:in `m'\xFF" })

    details = LogIngestion::ExceptionDetails.call(error)

    expect(details[:message]).to eq("password=[FILTERED] ?? broke")
    frames = details[:backtrace]
    expect(frames.size).to be <= LogIngestion::ExceptionDetails::BACKTRACE_LINES
    frame_limit = LogIngestion::ExceptionDetails::FRAME_BYTES + 3
    expect(frames).to all(satisfy { |f| f.valid_encoding? && f.bytesize <= frame_limit })
    expect(frames.sum(&:bytesize)).to be <= LogIngestion::ExceptionDetails::BACKTRACE_BYTES
    expect(JSON.generate(details).bytesize).to be < 20_000
  end

  it "cleans each frame as Rails' cleaner does, remembering at most CLEANED_FRAMES of them" do
    details = LogIngestion::ExceptionDetails
    frames = Array.new(3_000) { |i| "#{Rails.root}/app/models/order_#{i}.rb:#{i}:in `total'" }
    frames.each_slice(details::BACKTRACE_LINES) do |slice|
      error = RuntimeError.new("x")
      error.set_backtrace(slice)
      expect(details.backtrace(error)).to eq(Rails.backtrace_cleaner.clean(slice, :all))
    end
    expect(details.instance_variable_get(:@cleaned).size).to be <= details::CLEANED_FRAMES

    error = RuntimeError.new("again")
    error.set_backtrace(frames.last(2))
    expect(details.backtrace(error))
      .to eq(["app/models/order_2998.rb:2998:in `total'", "app/models/order_2999.rb:2999:in `total'"])
  end

  it "keeps a message of at most MESSAGE_BYTES and an exception without a backtrace" do
    details = LogIngestion::ExceptionDetails.call(ArgumentError.new("é" * 5_000))

    expect(details[:message].bytesize).to be <= LogIngestion::ExceptionDetails::MESSAGE_BYTES + 3
    expect(details[:message]).to be_valid_encoding
    expect(details[:backtrace]).to eq([])
  end
end
