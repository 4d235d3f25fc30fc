# frozen_string_literal: true

module LogIngestion
  # Runs the gem's own work on the host app's threads (the middleware's and the
  # concerns' entries, the Notifications subscribers, the Logger's forwarding) so that
  # a failure in it never reaches the host: the error is rescued, reported through the
  # client (`on_error`, once per source until the client is reconfigured) and the
  # fallback value returned.
  #
  # Owns: that rescue. Must never wrap the host app's own code (a `yield` into the app
  # or a job stays outside, so the app's exceptions propagate unchanged), never raise,
  # never block: reporting goes to the client, which hands it to the reporter thread.
  module Failsafe
    # Runs the block; on a StandardError reports it for +source+ (a Symbol naming the
    # gem's component) and returns +fallback+.
    def self.run(source, fallback = nil)
      yield
    rescue StandardError => e
      report(source, e)
      fallback
    end

    # Reports +error+ as a failure of +source+; never raises.
    def self.report(source, error)
      ::LogIngestionClient.client.report_failure(source, error)
    rescue StandardError
      nil
    end
  end
end
