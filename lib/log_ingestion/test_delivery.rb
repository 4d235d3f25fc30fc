# frozen_string_literal: true

require "json"

module LogIngestion
  # Test mode's delivery: records entries in memory instead of sending them. No
  # threads, no network, no engine: each entry is built by the native extension's
  # converter (LogIngestion::Native.entry_json) -- the one that builds what delivery
  # sends, defaults, metadata conversion and message cut included -- and recorded as a
  # Hash with the Symbol keys :timestamp :service :level :message :metadata.
  class TestDelivery
    # The in-memory list of recorded entries, shared by every TestDelivery of a client.
    class Recorder
      def initialize
        @entries = []
        @lock = Mutex.new
      end

      def record(entry)
        @lock.synchronize { @entries << entry.freeze }
      end

      def entries
        @lock.synchronize { @entries.dup }
      end

      def clear
        @lock.synchronize { @entries.clear }
      end
    end

    def initialize(configuration, recorder)
      Native.load!
      @service = configuration.service
      @recorder = recorder
      @enqueued = 0
      @pid = Process.pid
    end

    attr_reader :pid

    # True. A forked child gets its own delivery from LogIngestion::ForkHook; a child
    # forked without it (Process.daemon) records here, in its own copy of the recorder.
    def enqueue(level, message, metadata)
      record(level: level, message: message, metadata: metadata)
      true
    end

    def send_log(entry, _timeout, retries: true)
      record(entry)
      { "accepted" => 1 }
    end

    def flush(_timeout)
      true
    end

    def shutdown(_timeout)
      { delivered: 0, undelivered: 0, spooled: 0 }
    end

    def stats
      EngineDelivery.idle_stats.merge(enqueued: @enqueued, sent: @enqueued)
    end

    private

    def record(entry)
      sent = JSON.parse(Native.entry_json(entry, @service))
      @recorder.record(sent.to_h { |key, value| [key.to_sym, value] })
      @enqueued += 1
    end
  end
end
