# frozen_string_literal: true

require "spec_helper"

# The opentelemetry-api gem is not packaged for Debian, so these examples load a minimal
# stand-in with the same API shape (OpenTelemetry::Trace.current_span.context with
# valid?, hex_trace_id, hex_span_id and trace_flags.sampled?), in a child process: it
# must not outlive the example.
RSpec.describe LogIngestion::TraceContext do
  OPEN_TELEMETRY_STAND_IN = <<~RUBY
    module OpenTelemetry
      module Trace
        TraceFlags = Struct.new(:sampled) do
          def sampled? = sampled
        end
        SpanContext = Struct.new(:hex_trace_id, :hex_span_id, :trace_flags) do
          def valid? = hex_trace_id != "0" * 32
        end
        Span = Struct.new(:context)
        INVALID = Span.new(SpanContext.new("0" * 32, "0" * 16, TraceFlags.new(false)))
        @current = INVALID
        class << self
          attr_accessor :current

          def current_span = @current

          def in_span(trace_id, span_id)
            previous = @current
            @current = Span.new(SpanContext.new(trace_id, span_id, TraceFlags.new(true)))
            yield
          ensure
            @current = previous
          end
        end
      end
    end
  RUBY

  it "leaves metadata untouched, the same object, when OpenTelemetry is not loaded" do
    described_class.reset
    metadata = { user_id: 1 }
    expect(described_class.merge_into(metadata)).to be(metadata)
    expect(described_class.merge_into(nil)).to be_nil
  end

  it "adds the current span's trace context, the caller's own trace id winning, none outside a span" do
    out, err, status = run_ruby(<<~RUBY)
      require "log_ingestion"
      #{OPEN_TELEMETRY_STAND_IN}
      trace = "5b8efff798038103d269b633813fc60c"
      puts LogIngestion::TraceContext.merge_into({ a: 1 }).inspect
      OpenTelemetry::Trace.in_span(trace, "eee19b7ec3c1b174") do
        puts LogIngestion::TraceContext.merge_into({ a: 1 }).inspect
        puts LogIngestion::TraceContext.merge_into(nil).inspect
        puts LogIngestion::TraceContext.merge_into({ "trace_id" => "mine" }).inspect
      end
      def (OpenTelemetry::Trace).current_span = raise("broken API")
      puts LogIngestion::TraceContext.merge_into({ a: 2 }).inspect
    RUBY
    expect(status).to be_success, err
    expect(out.lines.map(&:chomp)).to eq(
      [
        "{:a=>1}",
        '{:a=>1, :trace_id=>"5b8efff798038103d269b633813fc60c", :span_id=>"eee19b7ec3c1b174", :trace_flags=>1}',
        '{:trace_id=>"5b8efff798038103d269b633813fc60c", :span_id=>"eee19b7ec3c1b174", :trace_flags=>1}',
        '{"trace_id"=>"mine"}',
        "{:a=>2}"
      ]
    )
  end

  it "is on every entry a client logs inside a span", :native do
    out, err, status = run_ruby(<<~RUBY)
      require "log_ingestion"
      #{OPEN_TELEMETRY_STAND_IN}
      client = LogIngestion::Client.new
      client.configure(LogIngestion::Configuration.new(test_mode: true, service: "spec"))
      OpenTelemetry::Trace.in_span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174") do
        client.log(:info, "inside", { user_id: 7 })
      end
      client.log(:info, "outside")
      client.recorded_entries.each { |entry| puts entry[:metadata].sort.to_h.inspect }
    RUBY
    expect(status).to be_success, err
    expect(out.lines.map(&:chomp)).to eq(
      ['{"span_id"=>"eee19b7ec3c1b174", "trace_flags"=>1, "trace_id"=>"5b8efff798038103d269b633813fc60c", "user_id"=>7}',
       "{}"]
    )
  end
end
