# frozen_string_literal: true

module LogIngestion
  # The one fork check of the Ruby side: Ruby's hook for fork (Process._fork, called
  # by Kernel#fork, Process.fork and IO.popen("-"), prepended to Process's singleton
  # class as Ruby documents) tells every LogIngestion::Client in a forked child that
  # the deliveries it holds belong to the parent, so a child's first log call starts
  # its own and no log call asks which process it runs in. Owns the list of clients
  # (weakly held) and the hook; never touches a delivery itself.
  #
  # A fork that does not go through Process._fork (Process.daemon, a C extension's
  # fork) is still caught, later: the native engine refuses calls from a process that
  # did not start it (its enqueue answers nil, which the client takes for the fork).
  module ForkHook
    @clients = ObjectSpace::WeakMap.new

    class << self
      # Remembers +client+ (until it is garbage) for the next fork.
      def register(client)
        @clients[client] = true
        client
      end

      # In a forked child: each client forgets its parent's deliveries. Never raises
      # into the fork's caller.
      def forked
        @clients.each_key(&:forked)
      rescue StandardError => e
        LogIngestion.logger.error("log_ingestion: after fork: #{e.class}: #{e.message}")
      end
    end

    # Process._fork: 0 in the child, the child's id in the parent.
    def _fork
      pid = super
      ForkHook.forked if pid.zero?
      pid
    end
  end
end

Process.singleton_class.prepend(LogIngestion::ForkHook)
