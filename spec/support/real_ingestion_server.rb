# frozen_string_literal: true

require "json"
require "net/http"
require "open3"
require "securerandom"
require "socket"
require "tmpdir"
require "fileutils"
require "uri"
require_relative "child_process"
require_relative "polling"

# The real ingestion server (server/, binary log-ingestion-server) on a FRESH
# PostgreSQL database, for the gem specs, the Rails end-to-end specs and the
# benchmark. The PostgreSQL server is the one DATABASE_URL names when it is set (CI:
# the cluster's `postgres` database), else the private cluster of
# `bin/postgres-dev start`. Each Instance creates its own database there, runs
# `log-ingestion-server migrate` on it, serves on a free port, and drops the
# database again in #stop. Rows are read with `psql -At -c` (no pg gem). The storage
# mode is LOG_INGESTION_TEST_STORAGE when set (`rake test:ruby` asks for timescaledb
# when TimescaleDB is installed), else the server's default (auto).
#
# Owns: the server processes and databases it creates. Never writes to the
# database DATABASE_URL names, never touches other databases.
#
#   server = RealIngestionServer.shared   # one per spec run, stopped after the suite
#   server.url; server.api_key; server.count(service: "svc")
module RealIngestionServer
  ROOT = File.expand_path("../..", __dir__)
  API_KEY = "spec-api-key"

  class << self
    # LOG_INGESTION_SERVER_BIN, else target/debug, else target/release.
    def binary
      return ENV["LOG_INGESTION_SERVER_BIN"] if ENV["LOG_INGESTION_SERVER_BIN"]

      %w[debug release].map { |profile| File.join(ROOT, "target", profile, "log-ingestion-server") }
                       .find { |path| File.executable?(path) }
    end

    def available?
      unavailable_reason.nil?
    end

    # LOG_INGESTION_STORAGE for the servers started here: LOG_INGESTION_TEST_STORAGE when set.
    def storage_env
      mode = ENV.fetch("LOG_INGESTION_TEST_STORAGE", "")
      mode.empty? ? {} : { "LOG_INGESTION_STORAGE" => mode }
    end

    # The storage mode asked for, or nil (the server's auto).
    def requested_storage
      storage_env["LOG_INGESTION_STORAGE"]
    end

    # Why no server can be started here, or nil when one can.
    def unavailable_reason
      return @unavailable_reason if defined?(@unavailable_reason)

      @unavailable_reason =
        if binary.nil? then "no target/{debug,release}/log-ingestion-server (cargo build -p log_ingestion_server)"
        elsif !system("command -v psql > /dev/null 2>&1") then "psql not found"
        end
    end

    # The URL of the PostgreSQL server's maintenance database the spec databases are
    # created from: DATABASE_URL, else `bin/postgres-dev start`'s.
    def maintenance_url
      from_env = ENV["DATABASE_URL"]
      return from_env unless from_env.nil? || from_env.empty?

      @postgres_dev_url ||= begin
        out, err, status = Open3.capture3(File.join(ROOT, "bin", "postgres-dev"), "start")
        raise "bin/postgres-dev start failed: #{err}" unless status.success?

        out[/^DATABASE_URL=(\S+)/, 1] or raise "bin/postgres-dev start printed no DATABASE_URL: #{out}"
      end
    end

    # Runs +sql+ with psql against +url+; returns the output, stripped.
    def psql(sql, url:)
      out, err, status = Open3.capture3("psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql)
      raise "psql failed: #{err}" unless status.success?

      out.strip
    end

    # +text+ as an SQL string literal.
    def quote(text)
      "'#{text.to_s.gsub("'", "''")}'"
    end

    # A TCP port nothing listens on right now.
    def free_port
      server = TCPServer.new("127.0.0.1", 0)
      server.addr[1]
    ensure
      server&.close
    end

    # True when GET +url+ answers 2xx.
    def http_ok?(url)
      Net::HTTP.get_response(URI(url)).code.to_i.between?(200, 299)
    rescue SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout
      false
    end

    # One server for the whole run, started on first use.
    def shared
      @shared ||= Instance.new.start
    end

    def stop_shared
      @shared&.stop
      @shared = nil
    end
  end

  # One running server process and its database.
  class Instance
    attr_reader :url, :database_url

    # +env+: extra environment for the server process.
    def initialize(env: {})
      @extra_env = env
    end

    def api_key
      API_KEY
    end

    def start
      @database_url = create_database
      migrate
      @dir = Dir.mktmpdir("log-ingestion-spec-server")
      serve(RealIngestionServer.free_port)
      self
    rescue StandardError
      stop
      raise
    end

    # Stops serving (connections to #url are refused) and keeps the database.
    def stop_serving
      @process&.stop
      @process = nil
    end

    # Serves again on the same port and database, after #stop_serving.
    def serve_again
      serve(Integer(URI(@url).port))
      self
    end

    def stop
      @process&.stop
    ensure
      @process = nil
      FileUtils.remove_entry(@dir) if @dir
      @dir = nil
      drop_database
    end

    # Runs +sql+ on this server's database; returns psql's output, stripped.
    def psql(sql)
      RealIngestionServer.psql(sql, url: @database_url)
    end

    # psql's output lines for +sql+.
    def rows(sql)
      psql(sql).lines.map(&:chomp)
    end

    # Rows stored for +service+.
    def count(service:)
      psql("SELECT count(*) FROM logs WHERE service = #{RealIngestionServer.quote(service)}").to_i
    end

    def messages(service:)
      rows("SELECT message FROM logs WHERE service = #{RealIngestionServer.quote(service)} ORDER BY id")
    end

    def metadata(service:, message:)
      JSON.parse(psql("SELECT metadata FROM logs WHERE service = #{RealIngestionServer.quote(service)} " \
                      "AND message = #{RealIngestionServer.quote(message)} ORDER BY id LIMIT 1"))
    end

    # Waits until +count+ rows exist for +service+ (or +timeout+ passes); returns the count.
    def wait_for_count(service:, count:, timeout: 20)
      stored = 0
      Polling.wait_until(timeout: timeout, what: "#{count} rows of #{service}") do
        (stored = self.count(service: service)) >= count
      end
      stored
    rescue Polling::Timeout
      stored
    end

    private

    def serve(port)
      @url = "http://127.0.0.1:#{port}"
      @process = ChildProcess.new(server_env(port), [RealIngestionServer.binary, "serve"], File.join(@dir, "server.log"))
      Polling.wait_until(timeout: 60, what: "the ingestion server at #{@url}") do
        raise "the ingestion server exited:\n#{@process.log}" unless @process.alive?

        RealIngestionServer.http_ok?("#{@url}/health")
      end
    end

    def server_env(port)
      {
        "DATABASE_URL" => @database_url,
        "LOG_INGESTION_API_KEYS" => API_KEY,
        "LOG_INGESTION_HOST" => "127.0.0.1",
        "LOG_INGESTION_PORT" => port.to_s,
        "LOG_INGESTION_RATE_LIMIT_RPS" => "100000",
        "LOG_INGESTION_RATE_LIMIT_BURST" => "100000",
        "RUST_LOG" => "warn"
      }.merge(RealIngestionServer.storage_env).merge(@extra_env)
    end

    def create_database
      @maintenance_url = RealIngestionServer.maintenance_url
      @database = "log_ingestion_spec_#{Process.pid}_#{SecureRandom.hex(4)}"
      RealIngestionServer.psql("CREATE DATABASE #{@database}", url: @maintenance_url)
      uri = URI(@maintenance_url)
      uri.path = "/#{@database}"
      uri.to_s
    end

    def drop_database
      RealIngestionServer.psql("DROP DATABASE IF EXISTS #{@database} WITH (FORCE)", url: @maintenance_url) if @database
    rescue StandardError => e
      warn "could not drop #{@database}: #{e.message}"
    ensure
      @database = nil
    end

    def migrate
      env = { "DATABASE_URL" => @database_url, "LOG_INGESTION_API_KEYS" => API_KEY }
      out, status = Open3.capture2e(env.merge(RealIngestionServer.storage_env), RealIngestionServer.binary, "migrate")
      raise "log-ingestion-server migrate failed: #{out}" unless status.success?
    end
  end
end

# The shared server is stopped (and its database dropped) when the suite ends,
# whichever spec file started it.
RSpec.configure { |config| config.after(:suite) { RealIngestionServer.stop_shared } } if defined?(RSpec)
