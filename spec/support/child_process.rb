# frozen_string_literal: true

require_relative "polling"

# A process the specs start (the ingestion server, Puma), run from the repository
# root in its own process group with stdout and stderr in one log file. Owns
# starting, reaping and stopping that one process; never signals anything else.
#
#   child = ChildProcess.new({ "PORT" => "3000" }, %w[bin/server], "/tmp/server.log")
#   child.alive?; child.log; child.stop
class ChildProcess
  ROOT = File.expand_path("../..", __dir__)

  attr_reader :pid, :log_path

  def initialize(env, argv, log_path)
    @log_path = log_path
    @pid = Process.spawn(env, *argv, out: log_path, err: %i[child out], chdir: ROOT, pgroup: true)
  end

  def alive?
    Process.waitpid(@pid, Process::WNOHANG).nil?
  rescue Errno::ECHILD
    false
  end

  def log
    File.exist?(@log_path) ? File.read(@log_path) : ""
  end

  # TERM, then waits up to +timeout+ seconds for the exit; a process still running
  # then is KILLed and Polling::Timeout raised.
  def stop(timeout: 30)
    Process.kill("TERM", @pid)
    Polling.wait_until(timeout: timeout, what: "process #{@pid} to exit") { !alive? }
  rescue Polling::Timeout
    Process.kill("KILL", @pid)
    Process.wait(@pid)
    raise
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end
end
