# frozen_string_literal: true

require "net/http"
require "open3"
require "securerandom"
require "socket"
require "uri"

# The real ingestion server (server/, binary log-ingestion-server) on a fresh
# PostgreSQL database: `bin/postgres-dev start` gives the cluster, a new database is
# created per run, `log-ingestion-server migrate` prepares it, then `serve` runs on a
# free port until the suite ends. Rows are counted with `psql -At -c` (no pg gem).
#
#   server = RealIngestionServer.shared
#   server.url; server.api_key; server.count(service: "svc")
module RealIngestionServer
  ROOT = File.expand_path("../..", __dir__)
  API_KEY = "spec-api-key"

  class << self
    def binary
      return ENV["LOG_INGESTION_SERVER_BIN"] if ENV["LOG_INGESTION_SERVER_BIN"]

      %w[release debug].map { |profile| File.join(ROOT, "target", profile, "log-ingestion-server") }
                       .select { |path| File.executable?(path) }
                       .max_by { |path| File.mtime(path) }
    end

    def available?
      unavailable_reason.nil?
    end

    def unavailable_reason
      return @unavailable_reason if defined?(@unavailable_reason)

      @unavailable_reason =
        if binary.nil? then "no target/{release,debug}/log-ingestion-server (cargo build -p log_ingestion_server)"
        elsif !system("which psql > /dev/null 2>&1") then "psql not found"
        end
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

    def initialize(env: {})
      @extra_env = env
    end

    def api_key
      API_KEY
    end

    def start
      @database_url = create_database
      migrate
      port = free_port
      @url = "http://127.0.0.1:#{port}"
      @log = File.join(ROOT, "tmp", "spec-server-#{Process.pid}-#{port}.log")
      @pid = Process.spawn(server_env(port), RealIngestionServer.binary, "serve", out: @log, err: @log)
      wait_until_healthy
      self
    end

    def stop
      return unless @pid

      Process.kill("TERM", @pid)
      Process.wait(@pid)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    ensure
      @pid = nil
      File.delete(@log) if @log && File.exist?(@log)
      drop_database
    end

    # Rows stored for +service+.
    def count(service:)
      psql("SELECT count(*) FROM logs WHERE service = '#{service.gsub("'", "''")}'").to_i
    end

    def messages(service:)
      psql("SELECT message FROM logs WHERE service = '#{service.gsub("'", "''")}' ORDER BY id").split("\n")
    end

    def metadata(service:, message:)
      JSON.parse(psql("SELECT metadata FROM logs WHERE service = '#{service.gsub("'", "''")}' " \
                      "AND message = '#{message.gsub("'", "''")}' ORDER BY id LIMIT 1"))
    end

    # Waits until +count+ rows exist for +service+ (or +timeout+ passes); returns the count.
    def wait_for_count(service:, count:, timeout: 20)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      loop do
        current = self.count(service: service)
        return current if current >= count || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.05
      end
    end

    def psql(sql, url: @database_url)
      out, err, status = Open3.capture3("psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql)
      raise "psql failed: #{err}" unless status.success?

      out.strip
    end

    private

    def server_env(port)
      {
        "DATABASE_URL" => @database_url,
        "LOG_INGESTION_API_KEYS" => API_KEY,
        "LOG_INGESTION_HOST" => "127.0.0.1",
        "LOG_INGESTION_PORT" => port.to_s,
        "LOG_INGESTION_RATE_LIMIT_RPS" => "100000",
        "LOG_INGESTION_RATE_LIMIT_BURST" => "100000",
        "RUST_LOG" => "warn"
      }.merge(@extra_env)
    end

    def create_database
      out, err, status = Open3.capture3(File.join(ROOT, "bin", "postgres-dev"), "start")
      raise "bin/postgres-dev start failed: #{err}" unless status.success?

      base = out[/DATABASE_URL=(\S+)/, 1] or raise "bin/postgres-dev printed no DATABASE_URL: #{out}"
      @base_url = base
      @database = "log_ingestion_spec_#{Process.pid}_#{SecureRandom.hex(4)}"
      psql("CREATE DATABASE #{@database}", url: base)
      uri = URI(base)
      uri.path = "/#{@database}"
      uri.to_s
    end

    def drop_database
      psql("DROP DATABASE IF EXISTS #{@database} WITH (FORCE)", url: @base_url) if @database
    rescue StandardError => e
      warn "could not drop #{@database}: #{e.message}"
    ensure
      @database = nil
    end

    def migrate
      out, status = Open3.capture2e({ "DATABASE_URL" => @database_url, "LOG_INGESTION_API_KEYS" => API_KEY },
                                    RealIngestionServer.binary, "migrate")
      raise "log-ingestion-server migrate failed: #{out}" unless status.success?
    end

    def free_port
      server = TCPServer.new("127.0.0.1", 0)
      server.addr[1]
    ensure
      server&.close
    end

    def wait_until_healthy(timeout: 30)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      loop do
        begin
          return if Net::HTTP.get_response(URI("#{@url}/health")).code == "200"
        rescue SystemCallError, IOError, Net::OpenTimeout
          nil
        end
        raise "server did not become healthy: #{File.read(@log)}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        raise "server exited: #{File.read(@log)}" if Process.waitpid(@pid, Process::WNOHANG)

        sleep 0.05
      end
    end
  end
end
