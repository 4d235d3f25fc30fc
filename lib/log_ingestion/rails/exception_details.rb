# frozen_string_literal: true

module LogIngestion
  # The metadata an error entry carries for an exception: class, message and the
  # first lines of the backtrace. Owns that shape only; never logs, never raises.
  module ExceptionDetails
    BACKTRACE_LINES = 10

    # { class:, message:, backtrace: } for +exception+.
    def self.call(exception)
      {
        class: exception.class.name,
        message: exception.message.to_s,
        backtrace: Array(exception.backtrace).first(BACKTRACE_LINES)
      }
    rescue StandardError
      { class: exception.class.name, message: "[message unavailable]", backtrace: [] }
    end
  end
end
