# frozen_string_literal: true

require "log_ingestion/rails/exception_entry"
require "log_ingestion/failsafe"

module LogIngestion
  # Subscriber to Rails' error reporter (`Rails.error`, Rails 7.0 and later): an exception the
  # app reports (`Rails.error.report(e)`, `Rails.error.handle { ... }`) or Rails reports is an
  # exception entry like the middleware's -- ExceptionEntry: the same `exception` metadata,
  # each exception object sent once, so one the middleware sent already is not sent again --
  # with `handled`, `severity`, `source` and the reporter's context (its scalar values only).
  #
  # Owns that entry; never raises into the reporter (built in Failsafe). The Railtie
  # subscribes it when Rails has an error reporter and the request entries are on.
  class ErrorSubscriber
    LEVELS = { error: "ERROR", warning: "WARN", info: "INFO" }.freeze
    # Most context keys sent, and the longest context value.
    CONTEXT_KEYS = 20
    CONTEXT_VALUE_BYTES = 256

    @subscribed = false

    class << self
      # Subscribes one ErrorSubscriber to Rails.error when there is one (once per process);
      # true when it is subscribed.
      def subscribe
        return @subscribed if @subscribed || !(defined?(::Rails) && ::Rails.respond_to?(:error))

        ::Rails.error.subscribe(new)
        @subscribed = true
      end
    end

    # Rails' subscriber interface.
    def report(error, handled:, severity:, context: {}, source: nil)
      Failsafe.run(:error_subscriber) do
        metadata = { handled: handled, severity: severity.to_s, source: source&.to_s }.compact
        fields = context_fields(context)
        metadata[:context] = fields unless fields.empty?
        ExceptionEntry.log(error, LEVELS.fetch(severity, "ERROR"), metadata)
      end
      nil
    end

    private

    def context_fields(context)
      return {} unless context.is_a?(Hash)

      context.first(CONTEXT_KEYS).each_with_object({}) do |(key, value), fields|
        case value
        when String, Symbol then fields[key.to_s] = cut(value.to_s)
        when Numeric, true, false then fields[key.to_s] = value
        end
      end
    end

    def cut(text)
      text.bytesize > CONTEXT_VALUE_BYTES ? "#{text.byteslice(0, CONTEXT_VALUE_BYTES).scrub('')}..." : text
    end
  end
end
