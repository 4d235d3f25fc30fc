# frozen_string_literal: true

require "logger"
require "active_support/logger"
require "log_ingestion/rails/parameter_filter"
require "log_ingestion/rails/exception_details"
require "log_ingestion/rails/exception_entry"
require "log_ingestion/failsafe"
require "log_ingestion/context"

module LogIngestion
  # A Logger whose records become entries -- the guide's LogIngestionLogger,
  # shipped. Levels map to the service's levels; tags from
  # ActiveSupport::TaggedLogging go into metadata (the request's or job's ids are
  # added by the client from the Context); messages are right-trimmed; values
  # of filtered keys are masked in the text (ParameterFilter#filter_text), since
  # Rails 6.1 prints SQL binds and job arguments unfiltered.
  #
  #   config.logger = LogIngestion::Logger.new(Rails.root.join("log/production.log")) # file + service
  #   config.logger = ActiveSupport::TaggedLogging.new(LogIngestion::Logger.new)      # service only
  #   LogIngestion::Logger.broadcast(Rails.logger)  # beside the existing logger (6.1 and 7.1+)
  #
  # Owns: turning Logger calls into entries. Never recurses into itself: a record
  # logged while this thread is already forwarding one (e.g. the client reporting
  # an error through Rails.logger) is written to the device only, never forwarded.
  # Records of the gem's own diagnostics (progname "log_ingestion") are never
  # forwarded either. Never raises from a logging call because forwarding failed.
  class Logger < ActiveSupport::Logger
    LEVELS = {
      ::Logger::DEBUG => "DEBUG",
      ::Logger::INFO => "INFO",
      ::Logger::WARN => "WARN",
      ::Logger::ERROR => "ERROR",
      ::Logger::FATAL => "FATAL",
      ::Logger::UNKNOWN => "INFO"
    }.freeze
    SEVERITY_NAMES = %w[DEBUG INFO WARN ERROR FATAL ANY].freeze
    ANSI_ESCAPE = /\e\[[\d;]*m/.freeze
    # Records with this progname are the gem's own diagnostics: never forwarded.
    GEM_PROGNAME = "log_ingestion"
    # What ActiveJob's lines print before a job's arguments.
    JOB_ARGUMENTS = " with arguments: "
    JOB_ARGUMENTS_TEXT = /#{JOB_ARGUMENTS}.*/m.freeze
    # The tag ActiveJob's tagged lines start with.
    ACTIVE_JOB_TAG = "ActiveJob"
    FORWARDING = :log_ingestion_logger_forwarding
    private_constant :FORWARDING

    class << self
      # True while this thread forwards a record to the client.
      def forwarding?
        Thread.current.thread_variable_get(FORWARDING) ? true : false
      end

      # Runs the block with forwarding switched off on this thread (records are
      # still written to the device). The gem's own diagnostics use it.
      def without_forwarding
        previous = Thread.current.thread_variable_get(FORWARDING)
        Thread.current.thread_variable_set(FORWARDING, true)
        yield
      ensure
        Thread.current.thread_variable_set(FORWARDING, previous)
      end

      # Makes +logger+ also send its records to the service, in place where the
      # Rails version allows it, and returns the logger to use from now on:
      # - Rails 7.1+ ActiveSupport::BroadcastLogger: `broadcast_to` a new
      #   LogIngestion::Logger (tagged when the broadcast is), same object returned;
      # - Rails 6.1-7.0: extends +logger+ with ActiveSupport::Logger.broadcast,
      #   same object returned; tags pushed on +logger+ reach the entries.
      # A logger that already forwards (or already broadcasts to one that does)
      # is returned unchanged, so calling it twice never doubles entries.
      def broadcast(logger, level: nil)
        return logger if forwards?(logger)

        forwarder = new(nil)
        forwarder.level = logger.level
        forwarder.forward_level = level
        if logger.respond_to?(:broadcast_to) && logger.respond_to?(:broadcasts)
          forwarder = ActiveSupport::TaggedLogging.new(forwarder) if logger.respond_to?(:tagged)
          logger.broadcast_to(forwarder)
        else
          forwarder.tag_source = logger
          logger.extend(ActiveSupport::Logger.broadcast(forwarder))
          logger.instance_variable_set(:@log_ingestion_forwarder, forwarder)
        end
        logger
      end

      # True when +logger+ is, or broadcasts to, a LogIngestion::Logger.
      def forwards?(logger)
        return true if logger.is_a?(LogIngestion::Logger)
        return true if logger.instance_variable_defined?(:@log_ingestion_forwarder)

        logger.respond_to?(:broadcasts) && logger.broadcasts.any? { |l| l.is_a?(LogIngestion::Logger) }
      end
    end

    # A logger (its tagged formatter) whose current tags this one adds to entries;
    # set by `broadcast` so tags pushed on Rails.logger reach the entries.
    attr_accessor :tag_source

    # The lowest severity forwarded to the service (nil: the logger's level decides
    # alone). Kept apart from `level` because Rails 6.1's broadcast passes every
    # `Rails.logger.level = ...` on to this logger: the log file may go to DEBUG
    # while the service still gets INFO and up.
    attr_reader :forward_level

    def forward_level=(severity)
      @forward_level = severity.nil? ? nil : Logger.severity_number(severity)
    end

    # A Logger severity (Integer, or a name such as :info / "WARN") as its number.
    def self.severity_number(severity)
      return severity if severity.is_a?(Integer) && LEVELS.key?(severity)

      name = severity.to_s.upcase
      raise ArgumentError, "unknown log level #{severity.inspect}" unless SEVERITY_NAMES.include?(name) && name != "ANY"

      ::Logger.const_get(name)
    end

    # +logdev+ as for ::Logger (a path, an IO, or nil to only forward).
    # client: the object entries go to (default LogIngestionClient).
    def initialize(logdev = nil, *args, client: nil, **kwargs)
      super(logdev, *args, **kwargs)
      @client = client
      @forward_level = nil
    end

    def add(severity, message = nil, progname = nil, &block)
      severity ||= ::Logger::UNKNOWN
      return true if severity < level
      # Beside another logger (broadcast) a record below forward_level costs one
      # comparison: its block (Rails' "Completed ..." line) is not evaluated again here.
      return true if @logdev.nil? && @forward_level && severity < @forward_level

      progname ||= @progname
      if message.nil?
        if block
          message = block.call
        else
          message = progname
          progname = @progname
        end
      end
      super(severity, message, progname) if @logdev
      forward(severity, message, progname)
      true
    end

    private

    def forward(severity, message, progname)
      return if Logger.forwarding? || progname == GEM_PROGNAME || (@forward_level && severity < @forward_level)

      level = forwarded_level(severity, message) or return
      Logger.without_forwarding do
        text = ParameterFilter.current.filter_text(message_text(message))
        text = mask_job_arguments(text) if text.include?(JOB_ARGUMENTS)
        next if text.empty?

        client.log(level, text, metadata(severity, message, progname))
      end
    rescue StandardError => e
      raise if Failsafe.interrupt?(e)

      Logger.without_forwarding { Failsafe.report(:logger, e) }
    end

    def client
      @client || ::LogIngestionClient
    end

    # The level a record is forwarded at, or nil when it is not forwarded. Rails reports
    # an exception itself (ActionDispatch::DebugExceptions' FATAL lines, ActiveJob's
    # "Error performing ..." at ERROR); once the glue has taken that exception for an
    # entry of its own (Context#logged_exception: the request's or job's exception
    # entry, or RequestLogging's "Request error"), those records are not sent again.
    # A FATAL record of a request answered with a 4xx (a routing error, an invalid CSRF
    # token) that the glue did not take is a WARN, not a FATAL.
    def forwarded_level(severity, message)
      level = LEVELS.fetch(severity, "INFO")
      return level if severity < ::Logger::ERROR

      return nil if repeats_last_exception_entry?(message)

      context = Context.current or return level
      exception = context.logged_exception
      return nil if exception && (severity == ::Logger::FATAL || repeats?(message, exception))
      return level unless severity == ::Logger::FATAL

      status = context.response_status
      status && status >= 400 && status < 500 ? "WARN" : level
    end

    # True when +message+ is Rails' report of +exception+: it names its class.
    def repeats?(message, exception)
      return true if message.equal?(exception)

      message.is_a?(::String) && message.include?(exception.class.name)
    end

    def repeats_last_exception_entry?(message)
      text = ExceptionEntry.last_sent_text
      text && message.is_a?(::String) && message.include?(text)
    end

    def message_text(message)
      text = case message
             when ::String then message
             when ::Exception then "#{message.message} (#{message.class})"
             else message.inspect
             end
      text.gsub(ANSI_ESCAPE, "").rstrip # trailing newlines and blanks are layout, not content
    end

    def metadata(severity, message, progname)
      metadata = { logger: "rails", severity: SEVERITY_NAMES.fetch(severity, "ANY") }
      metadata[:progname] = progname.to_s if progname
      tags = current_tags
      metadata[:tags] = tags unless tags.empty?
      metadata[:exception] = ExceptionDetails.call(message) if message.is_a?(::Exception)
      metadata
    end

    # The tags of the record, without those that repeat what the entry carries anyway:
    # the request's or job's ids (config.log_tags = [:request_id], ActiveJob's
    # "[ActiveJob] [ExportJob] [job id]").
    def current_tags
      tags = []
      tags.concat(formatter.current_tags) if formatter.respond_to?(:current_tags)
      source = @tag_source&.formatter
      tags.concat(source.current_tags) if source.respond_to?(:current_tags)
      return tags if tags.empty?

      tags = tags.map(&:to_s).uniq
      context = Context.current or return tags
      known = context.metadata.values
      known += [ACTIVE_JOB_TAG] if context.job_id
      tags - known
    end

    # ActiveJob's own lines print positional arguments, which no key names:
    # everything after "with arguments: " is masked (the job entry carries them filtered).
    def mask_job_arguments(text)
      return text if ParameterFilter.current.empty?

      text.sub(JOB_ARGUMENTS_TEXT, "#{JOB_ARGUMENTS}#{ParameterFilter::MASK}")
    end
  end
end
