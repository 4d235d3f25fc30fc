# frozen_string_literal: true

# Waiting for a condition with a deadline, the specs' only way to wait (never a bare
# sleep as synchronisation).
#
#   Polling.wait_until(timeout: 30, what: "the server") { healthy? } # => the block's truthy value
module Polling
  # Raised when the condition did not hold before the deadline.
  class Timeout < StandardError; end

  # Calls the block every +interval+ seconds until it returns a truthy value, which
  # is returned; raises Polling::Timeout after +timeout+ seconds.
  def self.wait_until(timeout: 30, interval: 0.05, what: "condition")
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      result = yield
      return result if result
      raise Timeout, "timed out after #{timeout}s waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep interval
    end
  end
end
