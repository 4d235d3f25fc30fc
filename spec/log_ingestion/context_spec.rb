# frozen_string_literal: true

require "spec_helper"

RSpec.describe LogIngestion::Context do
  it "is set for the block only, and restored when the block raises" do
    expect(described_class.current).to be_nil
    expect do
      described_class.with(request_id: "outer") do
        described_class.with(job_id: "inner") { expect(described_class.current.job_id).to eq("inner") }
        expect(described_class.current.request_id).to eq("outer")
        raise ArgumentError, "app failure"
      end
    end.to raise_error(ArgumentError)
    expect(described_class.current).to be_nil
  end

  it "belongs to one fiber and one thread: another never sees it" do
    described_class.with(request_id: "mine") do
      expect(Thread.new { described_class.current }.value).to be_nil
      expect(Fiber.new { described_class.current }.resume).to be_nil
    end
  end

  it "adds its ids to metadata, the caller's own keys (Symbol or String) winning" do
    described_class.with(request_id: "r1", job_id: nil) do
      expect(described_class.merge_into({ user_id: 1 })).to eq(user_id: 1, request_id: "r1")
      expect(described_class.merge_into({ "request_id" => "mine" })).to eq("request_id" => "mine")
      expect(described_class.merge_into(nil)).to eq(request_id: "r1")
    end
    metadata = { user_id: 1 }
    expect(described_class.merge_into(metadata)).to be(metadata)
  end

  # Defines a stand-in for Rails 7's IsolatedExecutionState (thread isolation: one state
  # for every fiber of a thread), in a child process: it must not outlive the example.
  ISOLATED_EXECUTION_STATE = <<~RUBY
    module ActiveSupport
      module IsolatedExecutionState
        @state = {}
        class << self
          attr_reader :state

          def [](key) = @state[key]

          def []=(key, value)
            @state[key] = value
          end
        end
      end
    end
  RUBY

  it "stores and reads in ActiveSupport::IsolatedExecutionState once it is loaded, also when it loads after a first context" do
    out, err, status = run_ruby(<<~RUBY)
      require "log_ingestion"
      LogIngestion::Context.with(request_id: "before") { puts LogIngestion::Context.merge_into({})[:request_id] }
      #{ISOLATED_EXECUTION_STATE}
      LogIngestion::Context.with(request_id: "after") do
        puts LogIngestion::Context.merge_into({ a: 1 }).inspect
        puts ActiveSupport::IsolatedExecutionState.state.values.map(&:request_id).inspect
        puts Fiber.new { LogIngestion::Context.current.request_id }.resume
        puts Thread.current[:log_ingestion_context].inspect
      end
      puts LogIngestion::Context.current.inspect
    RUBY
    expect(status).to be_success, err
    expect(out.lines.map(&:chomp)).to eq(["before", '{:a=>1, :request_id=>"after"}', '["after"]', "after", "nil", "nil"])
  end

  it "still sees a context opened before IsolatedExecutionState loaded, inside and after a context stored there" do
    out, err, status = run_ruby(<<~RUBY)
      require "log_ingestion"
      LogIngestion::Context.with(request_id: "outer") do
        #{ISOLATED_EXECUTION_STATE}
        LogIngestion::Context.with(request_id: "inner") { puts LogIngestion::Context.current.request_id }
        puts LogIngestion::Context.current.request_id
      end
      puts LogIngestion::Context.current.inspect
    RUBY
    expect(status).to be_success, err
    expect(out.lines.map(&:chomp)).to eq(%w[inner outer nil])
  end

  it "keeps at most MAX_ID_BYTES of an id from outside" do
    context = described_class.new(request_id: "é" * 300)
    expect(context.request_id.bytesize).to be <= described_class::MAX_ID_BYTES
    expect(context.request_id).to be_valid_encoding
  end

  it "takes only Strings as ids from outside" do
    expect(described_class.clean_id({ "a" => "b" * 10_000 })).to be_nil
    expect(described_class.clean_id(["x"])).to be_nil
    expect(described_class.clean_id("")).to be_nil
    expect(described_class.clean_id("r-1")).to eq("r-1")
  end

  it "refuses unknown fields" do
    expect { described_class.new(user_id: 1) }.to raise_error(ArgumentError, /user_id/)
  end

  it "reaches every entry of LogIngestionClient, in test mode too" do
    client = LogIngestion::Client.new
    configuration = LogIngestion::Configuration.new
    configuration.test_mode = true
    client.configure(configuration)
    described_class.with(request_id: "r-client") { client.log("INFO", "inside", { a: 1 }) }
    client.log("INFO", "outside", { a: 2 })
    expect(client.recorded_entries.map { |e| e[:metadata] }).to eq([{ "a" => 1, "request_id" => "r-client" }, { "a" => 2 }])
  end
end
