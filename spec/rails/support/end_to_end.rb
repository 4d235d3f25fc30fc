# frozen_string_literal: true

require "net/http"
require "open3"
require "securerandom"
require "socket"
require "tmpdir"

# The real parts of the end-to-end specs: the ingestion server binary
# (target/*/log-ingestion-server, or LOG_INGESTION_SERVER_BIN) on a free port,
# against the PostgreSQL of `bin/postgres-dev start`, and `psql -At` to read the
# `logs` table. Owns starting and stopping what it starts; never touches other data
# than rows of the service names it makes up.
module EndToEnd
  ROOT = File.expand_path("../../..", __dir__)
  API_KEY = "rails-e2e-key-#{SecureRandom.hex(16)}"

  module_function

  # Why the end-to-end specs cannot run here, or nil when they can.
  def missing
    return "the ingestion server binary is not built (cargo build -p log_ingestion_server)" unless server_binary
    return "the native extension is not built (lib/log_ingestion/log_ingestion.so)" unless LogIngestion::Native.available?
    return "psql is not installed" unless system("command -v psql >/dev/null 2>&1")

    nil
  end

  def server_binary
    return ENV["LOG_INGESTION_SERVER_BIN"] if ENV["LOG_INGESTION_SERVER_BIN"]

    Dir[File.join(ROOT, "target", "*", "log-ingestion-server")].select { |f| File.executable?(f) }
                                                               .max_by { |f| File.mtime(f) }
  end

  def database_url
    @database_url ||= begin
      out, err, status = Open3.capture3(File.join(ROOT, "bin", "postgres-dev"), "start")
      raise "bin/postgres-dev start failed: #{err}" unless status.success?

      out[/^DATABASE_URL=(\S+)/, 1] or raise "bin/postgres-dev start printed no DATABASE_URL: #{out}"
    end
  end

  def psql(sql)
    out, err, status = Open3.capture3("psql", "-At", "-v", "ON_ERROR_STOP=1", "-d", database_url, "-c", sql)
    raise "psql failed: #{err}" unless status.success?

    out
  end

  def quote(text)
    "'#{text.to_s.gsub("'", "''")}'"
  end

  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  # Polls the block until it returns a truthy value or +timeout+ seconds pass.
  def wait_until(timeout: 30, interval: 0.1, what: "condition")
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      result = yield
      return result if result
      raise "timed out after #{timeout}s waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep interval
    end
  end

  def http_ok?(url)
    Net::HTTP.get_response(URI(url)).code.to_i.between?(200, 299)
  rescue SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout
    false
  end

  # A running process of +argv+ with +env+, output in a log file; stopped with TERM.
  class ChildProcess
    attr_reader :pid, :log_path

    def initialize(env, argv, log_path)
      @log_path = log_path
      @pid = Process.spawn(env, *argv, out: log_path, err: [:child, :out], chdir: ROOT, pgroup: true)
    end

    def alive?
      Process.waitpid(@pid, Process::WNOHANG).nil?
    rescue Errno::ECHILD
      false
    end

    def log
      File.exist?(@log_path) ? File.read(@log_path) : ""
    end

    def stop(timeout: 30)
      Process.kill("TERM", @pid)
      EndToEnd.wait_until(timeout: timeout, what: "process #{@pid} to exit") { !alive? }
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end
  end

  # The ingestion server on a free port; #url is its base URL.
  def start_server(dir)
    port = free_port
    env = { "DATABASE_URL" => database_url, "LOG_INGESTION_API_KEYS" => API_KEY,
            "LOG_INGESTION_PORT" => port.to_s, "LOG_INGESTION_HOST" => "127.0.0.1" }
    server = ChildProcess.new(env, [server_binary], File.join(dir, "server.log"))
    url = "http://127.0.0.1:#{port}"
    wait_until(timeout: 60, what: "the ingestion server at #{url}") do
      raise "the ingestion server exited:\n#{server.log}" unless server.alive?

      http_ok?("#{url}/health")
    end
    [server, url]
  end
end
