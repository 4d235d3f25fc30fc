# frozen_string_literal: true

module LogIngestion
  # Test mode's delivery: records entries in memory instead of sending them. No
  # threads, no network, no native extension. Entries look exactly like what the
  # native client sends (metadata serialised by MetadataSerializer), as Hashes with
  # the Symbol keys :timestamp :service :level :message :metadata.
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
      @service = configuration.service
      @recorder = recorder
      @enqueued = 0
      @pid = Process.pid
    end

    attr_reader :pid

    def enqueue(level, message, metadata)
      @recorder.record(
        timestamp: Time.now.utc.strftime("%Y-%m-%dT%H:%M:%S.%6NZ"),
        service: @service,
        level: level,
        message: MetadataSerializer.message(message),
        metadata: MetadataSerializer.call(metadata)
      )
      @enqueued += 1
      true
    end

    def send_log(entry, _timeout)
      @recorder.record(entry.merge(metadata: MetadataSerializer.call(entry[:metadata])))
      @enqueued += 1
      { "accepted" => 1 }
    end

    def flush(_timeout)
      true
    end

    def shutdown(_timeout)
      { delivered: 0, undelivered: 0 }
    end

    def stats
      NativeDelivery::EMPTY_STATS.merge(enqueued: @enqueued, sent: @enqueued)
    end
  end
end
