# frozen_string_literal: true

require "log_ingestion/rails/parameter_filter"
require "log_ingestion/version"

module LogIngestion
  # The metadata every entry that reports an exception carries under `exception`, the same
  # from every path (middleware, concerns, subscribers, Logger): `{class, message,
  # backtrace}`. The message is masked like logged text (it can quote input) and cut; the
  # backtrace is cleaned by `Rails.backtrace_cleaner` when there is one -- its filters only,
  # so every frame stays but app frames read `app/models/order.rb:12:in 'total'` and gem
  # frames `activerecord (6.1.7) lib/...` -- and bounded in frames and bytes. The gem's own
  # frames read `log_ingestion (VERSION) lib/...` however it is installed (a gem, a `path:`
  # checkout), so they are never taken for the app's.
  #
  # Owns that shape only; never logs, never raises. Costs nothing until an exception is
  # reported.
  module ExceptionDetails
    # Most frames sent: enough to reach the app's frame under a deep framework stack.
    BACKTRACE_LINES = 50
    # Longest frame, and most bytes of all frames together.
    FRAME_BYTES = 512
    BACKTRACE_BYTES = 16 * 1024
    # Longest message text (an exception message can quote input).
    MESSAGE_BYTES = 1024
    # This gem's lib/ directory, and how its frames are named instead.
    GEM_LIB = "#{File.expand_path('../..', __dir__)}/"
    GEM_FRAME_PREFIX = "log_ingestion (#{VERSION}) lib/"
    # Most cleaned frames remembered (see clean).
    CLEANED_FRAMES = 2048

    @cleaned = {}
    @clean_lock = Mutex.new

    class << self
      # { class:, message:, backtrace: } for +exception+.
      def call(exception)
        {
          class: exception.class.name,
          message: ParameterFilter.current.filter_text(cut(exception.message.to_s, MESSAGE_BYTES)),
          backtrace: backtrace(exception)
        }
      rescue StandardError
        { class: exception.class.name, message: "[message unavailable]", backtrace: [] }
      end

      # The exception's frames, cleaned (when Rails is there) and bounded.
      def backtrace(exception)
        raw = exception.backtrace
        return [] unless raw.is_a?(Array)

        frames = raw.first(BACKTRACE_LINES).map { |frame| own_frame(cut(frame.to_s, FRAME_BYTES)) }
        bounded(clean(frames))
      end

      private

      def own_frame(frame)
        frame.start_with?(GEM_LIB) ? "#{GEM_FRAME_PREFIX}#{frame.delete_prefix(GEM_LIB)}" : frame
      end

      # Rails' cleaner runs its filters on each frame (a regexp over every gem path): the
      # frames Rails and gems contribute repeat from one exception to the next, so each
      # frame is cleaned once and remembered (at most CLEANED_FRAMES of them).
      def clean(frames)
        cleaner = rails_cleaner or return frames
        @clean_lock.synchronize do
          @cleaned.clear if @cleaned.size > CLEANED_FRAMES - BACKTRACE_LINES
          misses = frames.reject { |frame| @cleaned.key?(frame) }.uniq
          unless misses.empty?
            # Any kind but :silent/:noise runs the filters only: no frame is dropped.
            cleaned = cleaner.clean(misses, :all)
            return frames unless cleaned.is_a?(Array) && cleaned.size == misses.size

            misses.zip(cleaned) { |raw, done| @cleaned[raw] = done.to_s }
          end
          frames.map { |frame| @cleaned.fetch(frame, frame) }
        end
      rescue StandardError
        frames
      end

      def rails_cleaner
        return nil unless defined?(::Rails) && ::Rails.respond_to?(:backtrace_cleaner)

        ::Rails.backtrace_cleaner
      end

      def bounded(frames)
        total = 0
        frames.each_with_object([]) do |frame, kept|
          text = cut(frame.to_s, FRAME_BYTES)
          total += text.bytesize
          break kept if total > BACKTRACE_BYTES

          kept << text
        end
      end

      def cut(text, limit)
        text = utf8(text)
        text.bytesize > limit ? "#{text.byteslice(0, limit).scrub('')}..." : text
      end

      def utf8(text)
        return text if text.encoding == Encoding::UTF_8 ? text.valid_encoding? : text.ascii_only?

        text = text.dup.force_encoding(Encoding::UTF_8) if text.encoding == Encoding::BINARY
        unless text.encoding == Encoding::UTF_8
          text = text.encode(Encoding::UTF_8, invalid: :replace, undef: :replace, replace: "?")
        end
        text.valid_encoding? ? text : text.scrub("?")
      end
    end
  end
end
