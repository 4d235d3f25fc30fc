# frozen_string_literal: true

require_relative "support/rails_app"
require "open3"

RSpec.describe LogIngestion::Logger do
  it "forwards Rails.logger's records (broadcast) and still writes the file logger" do
    Rails.logger.warn("disk almost full")

    entry = entry_with("disk almost full")
    expect(entry[:level]).to eq("WARN")
    expect(entry[:metadata]).to include("logger" => "rails", "severity" => "WARN")
    expect(LogIngestionTestApp.log_output.string).to include("disk almost full")
  end

  it "puts the tags of Rails.logger.tagged into metadata, without the request id tag that request_id says" do
    get "/widgets/tagged", {}, "HTTP_X_REQUEST_ID" => "tag-req-9"

    metadata = entry_with("tagged warning")[:metadata]
    expect(metadata["tags"]).to eq(%w[tenant-42])
    expect(metadata["request_id"]).to eq("tag-req-9")
  end

  it "forwards from WARN beside Rails.logger by default: the app's warnings, not Rails' INFO lines" do
    Rails.logger.info("routine")
    Rails.logger.warn("unusual")

    expect(entries.map { |e| e[:message] }).to eq(["unusual"])
  end

  it "does not evaluate a record's block again for the service below its forward_level" do
    calls = 0
    Rails.logger.info { calls += 1; "formatted once, for the file" }

    expect(calls).to eq(1)
    expect(LogIngestionTestApp.log_output.string).to include("formatted once, for the file")
  end

  it "masks the positional arguments in ActiveJob's own lines (forwarded at logger_level :info)" do
    RailsAppHelpers.forwarder.forward_level = :info
    ExportJob.perform_later(9943, "ann@example.com", "tok_9943")

    enqueued = entries.find { |e| e[:message].start_with?("Enqueued ExportJob") }
    expect(enqueued[:message]).to end_with("with arguments: [FILTERED]")
    text_lines = entries.select { |e| e[:metadata]["logger"] == "rails" }.map { |e| e[:message] }
    expect(text_lines.size).to be >= 3 # Enqueued, Performing, Performed
    expect(text_lines.join("\n")).not_to include("ann@example.com", "tok_9943")
  end

  it "maps each Logger severity to a service level" do
    logger = described_class.new(nil)
    logger.level = Logger::DEBUG
    %i[debug info warn error fatal unknown].each { |severity| logger.public_send(severity, "sev #{severity}") }

    levels = entries.select { |e| e[:message].start_with?("sev ") }.map { |e| e[:level] }
    expect(levels).to eq(%w[DEBUG INFO WARN ERROR FATAL INFO])
  end

  it "forwards nothing below its level" do
    logger = described_class.new(nil)
    logger.level = Logger::WARN
    logger.info("too chatty")

    expect(entries_with("too chatty")).to be_empty
  end

  it "puts ActiveSupport::TaggedLogging tags into metadata and keeps them out of the message" do
    logger = ActiveSupport::TaggedLogging.new(described_class.new(nil))
    logger.tagged("worker-3", "batch") { logger.info("tagged alone") }

    entry = entry_with("tagged alone")
    expect(entry[:metadata]["tags"]).to eq(%w[worker-3 batch])
  end

  it "writes to its own device too when given one (usable as config.logger)" do
    io = StringIO.new
    described_class.new(io).error("to both")

    expect(io.string).to include("to both")
    expect(entry_with("to both")[:level]).to eq("ERROR")
  end

  it "never recurses into itself when the client logs through it" do
    logger = nil
    calls = []
    recursing_client = Object.new
    recursing_client.define_singleton_method(:log) do |level, message, _metadata|
      calls << [level, message]
      logger.error("client complains about #{message}")
    end
    logger = described_class.new(nil, client: recursing_client)
    logger.info("first")

    expect(calls).to eq([%w[INFO first]])
  end

  it "never swallows the host's interrupts (Timeout's, rack-timeout's) raised while forwarding" do
    timing_out = Class.new { def log(*) = raise(Timeout::Error, "request timed out") }.new
    logger = described_class.new(nil, client: timing_out)

    expect { logger.warn("slow request") }.to raise_error(Timeout::Error, "request timed out")
  end

  it "never forwards the gem's own diagnostics (progname log_ingestion)" do
    described_class.new(nil, progname: "log_ingestion").warn("delivery failed")

    expect(entries_with("delivery failed")).to be_empty
  end

  it "never forwards what the gem's diagnostics logger (LogIngestion.logger) writes" do
    LogIngestion.logger.warn("diagnostic about delivery")

    expect(entries_with("diagnostic about delivery")).to be_empty
  end

  it "keeps its forwarding level when Rails.logger's level changes (6.1's broadcast passes level= on)" do
    file_logger = ActiveSupport::Logger.new(StringIO.new)
    file_logger.level = Logger::DEBUG
    described_class.broadcast(file_logger, level: :info)
    file_logger.level = :debug
    file_logger.debug("file only")
    file_logger.info("both")

    expect(entries.map { |e| e[:message] }).to eq(["both"])
  end

  it "is not added twice by a second broadcast" do
    described_class.broadcast(Rails.logger)
    Rails.logger.warn("only once")

    expect(entries_with("only once").size).to eq(1)
  end

  it "broadcasts beside a plain logger on Rails 6.1 (ActiveSupport::Logger.broadcast)" do
    io = StringIO.new
    file_logger = ActiveSupport::TaggedLogging.new(ActiveSupport::Logger.new(io))
    same = described_class.broadcast(file_logger)
    file_logger.tagged("t1") { file_logger.info("beside the file") }

    expect(same).to equal(file_logger)
    expect(io.string).to include("[t1] beside the file")
    expect(entry_with("beside the file")[:metadata]["tags"]).to eq(["t1"])
  end

  it "serves as the app's config.logger (tagged) without doubling entries when broadcast_logger is on too" do
    script = <<~RUBY
      require "./spec/rails/app/config/application"
      io = StringIO.new
      Rails.application.config.logger = ActiveSupport::TaggedLogging.new(LogIngestion::Logger.new(io))
      require "./spec/rails/app/config/environment"
      require "rack/mock"
      Rack::MockRequest.new(Rails.application).get("/widgets", "HTTP_X_REQUEST_ID" => "cfg-req-1")
      listed = LogIngestionClient.recorded_entries.select { |e| e[:message] == "listing widgets" }
      print({ forwarded: listed.size, tags: listed.map { |e| e[:metadata]["tags"] }, written: io.string.include?("listing widgets") }.inspect)
    RUBY
    Dir.mktmpdir("li-config-logger") do |dir|
      env = { "LOG_INGESTION_URL" => nil, "LOG_INGESTION_API_KEY" => nil,
              "LOG_INGESTION_TEST_DB" => File.join(dir, "config-logger.sqlite3") }
      out, err, status = Open3.capture3(env, RbConfig.ruby, "-Ilib", "-e", script, chdir: File.expand_path("../..", __dir__))

      expect(status).to be_success, err
      expect(out).to eq({ forwarded: 1, tags: [nil], written: true }.inspect) # the request id is request_id, not a tag
    end
  end
end

