# frozen_string_literal: true

require "log_ingestion/rails/exception_details"

module LogIngestion
  # The entry of an exception that escaped a request or a job: its own entry (ERROR for
  # a 5xx or a failed job, WARN for a 4xx), message "Class: message", metadata
  # `kind: "exception"`, `exception: {class, message, backtrace}` and what the caller
  # knows (request id, method, path, status; job class and id).
  #
  # Owns: that entry's shape, and sending each exception object at most once per process
  # (an inline job's exception that also fails the request enqueuing it is one entry).
  # Never raises (callers run it in Failsafe), never keeps an exception alive (a weak map
  # remembers the ones sent).
  module ExceptionEntry
    KIND = "exception"
    # Longest message text (an exception message can quote input).
    MESSAGE_LIMIT = ExceptionDetails::MESSAGE_BYTES

    @sent = ObjectSpace::WeakMap.new
    LAST_SENT = :log_ingestion_last_exception_text
    private_constant :LAST_SENT

    class << self
      # "Class (message)" of the last exception entry this fiber sent: how Rails' own
      # lines (ActiveJob's "Failed enqueuing ...", DebugExceptions') quote it, so the
      # Logger can tell a repeat from a line of the app's own.
      def last_sent_text
        Thread.current[LAST_SENT]
      end

      # True when +exception+ was already sent as an exception entry.
      def sent?(exception)
        @sent.key?(exception)
      end

      # Sends +exception+'s entry at +level+ with +metadata+ (the caller's keys) unless
      # it was sent before; returns true when it sent it.
      def log(exception, level, metadata)
        return false if sent?(exception)

        @sent[exception] = true
        details = ExceptionDetails.call(exception)
        Thread.current[LAST_SENT] = "#{details[:class]} (#{raw_message(exception)})"
        metadata[:kind] = KIND
        metadata[:exception] = details
        ::LogIngestionClient.log(level, "#{details[:class]}: #{details[:message]}", metadata)
        true
      end

      # "ERROR" for a 5xx (or no status), "WARN" for a 4xx.
      def level_for(status)
        status && status >= 400 && status < 500 ? "WARN" : "ERROR"
      end

      private

      # The message as Rails' own lines quote it (ExceptionDetails masks and cuts the sent one).
      def raw_message(exception)
        exception.message.to_s
      rescue StandardError
        nil
      end
    end
  end
end
