# frozen_string_literal: true

module LogIngestion
  # Runs the gem's own work on the host app's threads (the middleware's and the
  # concerns' entries, the Notifications subscribers, the Logger's forwarding) so that
  # a failure in it never reaches the host: the error is rescued, reported through the
  # client (`on_error`, once per source until the client is reconfigured) and the
  # fallback value returned.
  #
  # Owns: that rescue, and the rule of which exceptions are not the gem's to rescue
  # (interrupt?). Must never wrap the host app's own code (a `yield` into the app or a
  # job stays outside, so the app's exceptions propagate unchanged), never swallow the
  # host's interrupts, never raise otherwise, never block: reporting goes to the
  # client, which hands it to the reporter thread.
  module Failsafe
    # Runs the block; on a StandardError reports it for +source+ (a Symbol naming the
    # gem's component) and returns +fallback+. The host's interrupts are re-raised.
    def self.run(source, fallback = nil)
      yield
    rescue StandardError => e
      raise if interrupt?(e)

      report(source, e)
      fallback
    end

    # True for an exception the host raised into this thread to stop it (Timeout's,
    # rack-timeout's): such classes derive from RuntimeError, so a `rescue
    # StandardError` would otherwise swallow them and let a timed-out request run on.
    # Recognised by a class (or ancestor) whose name contains "Timeout"; only looked at
    # on the failure path, so it costs a log call nothing. The native metadata converter
    # asks it too, before it turns a value's StandardError into a placeholder.
    def self.interrupt?(error)
      error.class.ancestors.any? { |ancestor| ancestor.is_a?(Class) && ancestor.name.to_s.include?("Timeout") }
    end

    # Reports +error+ as a failure of +source+; never raises.
    def self.report(source, error)
      ::LogIngestionClient.client.report_failure(source, error)
    rescue StandardError
      nil
    end
  end
end
