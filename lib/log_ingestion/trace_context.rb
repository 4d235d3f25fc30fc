# frozen_string_literal: true

module LogIngestion
  # The current OpenTelemetry span's trace context on every entry: `trace_id`, `span_id`
  # (lowercase hex, as OTLP and the server's trace columns have them) and `trace_flags`,
  # added to the metadata when the app has loaded `opentelemetry-api` and a valid span
  # is current, so the explorer links an entry to everything of its trace.
  #
  # Owns: whether OpenTelemetry's API is there (`defined?(::OpenTelemetry::Trace)`,
  # asked once, at the first entry: the gem has no dependency on it and an app without
  # it pays one instance-variable read per entry), and reading the current span. The
  # caller's own keys win; it never starts a span, never loads OpenTelemetry and never
  # raises (a failure of the API leaves the metadata as it was).
  module TraceContext
    KEYS = %i[trace_id span_id trace_flags].freeze

    @available = nil

    class << self
      # +metadata+ with the current span's trace context added; the same object when
      # OpenTelemetry is not loaded, no span is current or the caller set a trace id.
      def merge_into(metadata)
        available = @available
        available = @available = defined?(::OpenTelemetry::Trace) ? true : false if available.nil?
        return metadata unless available

        fields = current_fields or return metadata
        return fields if metadata.nil?
        return metadata unless metadata.is_a?(Hash)
        return metadata if metadata.key?(:trace_id) || metadata.key?("trace_id")

        metadata.merge(fields)
      end

      # Asks again whether OpenTelemetry's API is loaded, at the next entry (for an app
      # that loads it after its first entry, and for tests).
      def reset
        @available = nil
      end

      private

      def current_fields
        context = ::OpenTelemetry::Trace.current_span.context
        return nil unless context.valid?

        { trace_id: context.hex_trace_id, span_id: context.hex_span_id,
          trace_flags: context.trace_flags.sampled? ? 1 : 0 }
      rescue StandardError
        nil
      end
    end
  end
end
