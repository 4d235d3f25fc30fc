# frozen_string_literal: true

module LogIngestion
  # The per-request / per-job context: what every entry this fiber sends while a
  # request or a job runs carries in its metadata -- `request_id` in a request;
  # `job_id`, `job_class`, `parent_request_id` (and `parent_job_id` for a job
  # enqueued by a job) in a job. LogIngestionClient adds it to every entry, the
  # app's own `LogIngestionClient.info` calls included; a key the caller passes
  # itself wins.
  #
  # Owns: the one place the current request/job is stored (fiber-local, as
  # Thread.current[] is in Ruby and ActiveSupport::CurrentAttributes is in Rails 6.1;
  # Rails 7's ActiveSupport::IsolatedExecutionState when present, so an app that
  # isolates per thread gets the same), and restoring the previous context when a
  # block ends, however it ends. Set by RequestContext/RequestLogging (requests),
  # ControllerLogging and JobContext (jobs); read by the Client, the Logger and the
  # subscribers. It never stores anything a client sent beyond the request id, never
  # outlives its block, and never raises.
  #
  # Besides the ids it carries two facts about the request for the Logger's noise
  # rules, set by RequestLogging: the exception it already logged (so Rails' FATAL
  # lines repeating it are not forwarded again) and the response status (a 4xx's
  # FATAL lines are forwarded at WARN).
  class Context
    FIELDS = %i[request_id job_id job_class parent_request_id parent_job_id].freeze
    IVARS = FIELDS.to_h { |field| [field, :"@#{field}"] }.freeze
    private_constant :IVARS
    KEY = :log_ingestion_context
    # Where the request id is kept in the Rack env, so the middlewares agree on one.
    REQUEST_ID_ENV = "log_ingestion.request_id"
    # Longest id kept from outside (a client's X-Request-Id; Rails caps it at 255 too).
    MAX_ID_BYTES = 255
    private_constant :KEY

    class << self
      # The context of the request or job this fiber is running, or nil. Read where
      # `with` last stored one, and not looked for at all before any was stored: every
      # log call asks (Context.merge_into), and choosing the storage costs a `defined?`
      # of a nested constant, about a twentieth of a log call outside Rails 7.
      def current
        return nil unless @stored

        # Thread.current too while IsolatedExecutionState holds none: a block `with`
        # opened before Rails loaded it stored its context there.
        @isolated_execution_state&.[](KEY) || Thread.current[KEY]
      end

      # Runs the block with a new context of +fields+ (see FIELDS; nil values are
      # left out), then restores the one before, in the same storage.
      def with(**fields)
        store = storage
        @stored = true
        previous = store[KEY]
        context = new(**fields)
        context.outer = previous
        store[KEY] = context
        yield
      ensure
        store[KEY] = previous if store
      end

      # Runs the block in the context of request +request_id+: the current one when it
      # is already that request's (RequestContext opened it further out), else a new one.
      def with_request(request_id, &block)
        context = current
        return yield if context&.request_id == request_id

        with(request_id: request_id, &block)
      end

      # +metadata+ with the current context's fields added (the caller's own keys win).
      # The same object when there is no context, so a log call outside requests and
      # jobs pays one fiber-local lookup (none before any context was ever stored).
      def merge_into(metadata)
        context = current or return metadata
        fields = context.metadata
        return metadata if fields.empty?
        return fields.dup if metadata.nil?
        return metadata unless metadata.is_a?(Hash)

        merged = metadata.dup
        fields.each { |key, value| merged[key] = value unless metadata.key?(key) || metadata.key?(key.name) }
        merged
      end

      # An id from outside (a header, a job payload) as a String of at most
      # MAX_ID_BYTES, or nil. Only Strings are ids: anything else in a payload (a Hash,
      # an Array) is ignored rather than turned into text.
      def clean_id(value)
        return nil unless value.is_a?(String)

        text = value
        return nil if text.empty?

        text.bytesize > MAX_ID_BYTES ? text.byteslice(0, MAX_ID_BYTES).scrub("") : text
      end

      private

      # Where `with` stores a context: Rails 7's IsolatedExecutionState once it is
      # loaded (remembered: it never goes away; `current` reads there from then on),
      # else this fiber's Thread.current storage.
      def storage
        return @isolated_execution_state if @isolated_execution_state
        return Thread.current unless defined?(::ActiveSupport::IsolatedExecutionState)

        @isolated_execution_state = ::ActiveSupport::IsolatedExecutionState
      end
    end

    FIELDS.each { |field| attr_reader field }

    # The exception RequestLogging logged as "Request error" in this request, or nil.
    attr_accessor :logged_exception
    # The status RequestLogging saw the app answer with, or nil.
    attr_accessor :response_status
    # The context this one was opened in (a request's, for a job run inline), or nil.
    attr_accessor :outer

    def initialize(**fields)
      unless fields.each_key.all? { |key| FIELDS.include?(key) }
        raise ArgumentError, "unknown context field(s) #{(fields.keys - FIELDS).inspect}"
      end

      metadata = {}
      FIELDS.each do |field| # one context per request: no per-field text or arrays
        value = self.class.clean_id(fields[field])
        instance_variable_set(IVARS.fetch(field), value)
        metadata[field] = value if value
      end
      @metadata = metadata.freeze
      @logged_exception = nil
      @response_status = nil
      @outer = nil
    end

    # The fields that are set, as entry metadata (frozen).
    attr_reader :metadata

    # The request this context belongs to or descends from: what a job it enqueues
    # records as its parent_request_id.
    def root_request_id
      request_id || parent_request_id
    end
  end
end
