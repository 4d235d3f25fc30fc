# frozen_string_literal: true

require "json"
require "time"

module LogIngestion
  # A Rack app that answers GET with this process's delivery counters as JSON
  # (`LogIngestionClient.stats` plus `pid` and `service`), so an operator can read
  # the running app's counters -- `bin/rails logs:stats` can only print its own
  # process's. Each Puma worker has its own counters: the answer names the pid of the
  # worker that served it.
  #
  #   # config/routes.rb -- behind whatever guards your admin pages
  #   authenticate :user, ->(u) { u.admin? } do   # or a constraint, or HTTP basic auth
  #     mount LogIngestion::StatsEndpoint.new => "/log_ingestion/stats"
  #   end
  #
  # Owns: that answer. It reads nothing from the request but its method, never logs,
  # never changes a counter, and never raises (a failure answers 500 with a fixed body).
  # It is not mounted by the gem: counters (and last_error) are for operators only.
  class StatsEndpoint
    HEADERS = { "Content-Type" => "application/json", "Cache-Control" => "no-store" }.freeze

    def initialize(client: nil)
      @client = client
    end

    def call(env)
      return [405, HEADERS.merge("Allow" => "GET"), ['{"error":"GET only"}']] unless %w[GET HEAD].include?(env["REQUEST_METHOD"])

      client = @client || ::LogIngestionClient
      stats = client.stats.transform_values { |value| value.is_a?(Time) ? value.utc.iso8601(3) : value }
      [200, HEADERS.dup, [JSON.generate({ pid: Process.pid, service: client.service }.merge(stats))]]
    rescue StandardError
      [500, HEADERS.dup, ['{"error":"stats unavailable"}']]
    end
  end
end
