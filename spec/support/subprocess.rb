# frozen_string_literal: true

require "open3"
require "rbconfig"

# Runs Ruby scripts in child processes with the repository's lib/ on the load path,
# for behaviour that only shows across a process boundary (exit, fork, signals).
module Subprocess
  LIB = File.expand_path("../../lib", __dir__)
  SUPPORT = __dir__

  # Runs +script+ to completion; returns [stdout, stderr, status].
  def run_ruby(script, env: {}, timeout: 60)
    Open3.popen3(env, RbConfig.ruby, "-I", LIB, "-e", script) do |stdin, stdout, stderr, wait|
      stdin.close
      out_reader = Thread.new { stdout.read }
      err_reader = Thread.new { stderr.read }
      unless wait.join(timeout)
        Process.kill("KILL", wait.pid)
        raise "child did not finish within #{timeout}s: #{err_reader.value}"
      end
      [out_reader.value, err_reader.value, wait.value]
    end
  end

  # Starts +script+; yields [stdin, stdout, stderr, wait_thread] and kills it at the end if alive.
  def spawn_ruby(script, env: {})
    Open3.popen3(env, RbConfig.ruby, "-I", LIB, "-e", script) do |stdin, stdout, stderr, wait|
      yield stdin, stdout, stderr, wait
    ensure
      begin
        Process.kill("KILL", wait.pid) if wait.alive?
      rescue Errno::ESRCH
        nil
      end
    end
  end

  # Reads lines from +io+ until one equals +line+ or +timeout+ passes.
  def wait_for_line(io, line, timeout: 30)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    seen = []
    loop do
      remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      raise "timed out waiting for #{line.inspect}; saw #{seen.inspect}" if remaining <= 0
      next unless io.wait_readable(remaining)

      got = io.gets or raise "stream closed before #{line.inspect}; saw #{seen.inspect}"
      seen << got.chomp
      return if got.chomp == line
    end
  end
end

RSpec.configure { |config| config.include(Subprocess) } if defined?(RSpec)
