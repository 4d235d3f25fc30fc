# frozen_string_literal: true

# The runner of `rake test`: the suites, each a task test:NAME, side by side in lanes (suites
# of one lane in order, lanes at the same time: the suites that wait on PostgreSQL and timers
# beside the CPU-bound ones; a suite starts once the builds it needs are done, the builds
# themselves side by side with the suites that need none), each suite's output in
# tmp/test-logs/NAME.log, printed when the suite fails; or, with `PARALLEL=0`, after the
# builds, one after another in this process (output on the terminal). A table of wall time
# and CPU seconds per suite (and per Rust test binary) ends every run, a failed one too.
#
# Owns: the suite registry (`SuiteRunner.suite`, which the Rakefile calls), the lanes, the
# logs and the table. What a suite runs is the Rakefile's.
require "fileutils"
require "json"
require "rake"
require "rbconfig"

module SuiteRunner
  extend Rake::DSL

  LOG_DIR = File.join(ROOT, "tmp/test-logs")
  # Set in the processes the runner starts for one suite or build: where that process writes
  # its CPU time and notes. Such a process runs no build: the runner ran them before.
  RESULT_ENV = "LOG_INGESTION_SUITE_RESULT"

  Suite = Struct.new(:name, :lane, :needs, keyword_init: true)
  Row = Struct.new(:name, :lane, :status, :wall, :cpu, :note, :details, keyword_init: true)

  @suites = []
  @note = nil
  @skipped = false
  @details = []
  @output = Mutex.new

  class << self
    attr_reader :suites
  end

  module_function

  def child?
    ENV.key?(RESULT_ENV)
  end

  # Defines task test:NAME running the block. +lane+: suites of one lane run one after
  # another, lanes side by side. +needs+: build tasks it uses, run before it when it runs
  # alone, and once before all suites when the runner runs several.
  def suite(name, lane:, desc:, needs: [], &block)
    suites << Suite.new(name: name, lane: lane, needs: needs)
    desc(desc)
    task("test:#{name}" => (child? ? [] : needs), &block)
  end

  # Says, in the log and the table, why the running suite did not run.
  def skipped(reason)
    puts "*** SKIPPED: #{reason}"
    @skipped = true
    note(reason)
  end

  # A remark in the suite's row of the table (e.g. which storage mode it ran in).
  def note(text)
    @note = [@note, text].compact.join("; ")
  end

  # A line under the suite's row in the table (e.g. one test binary's wall and CPU time).
  def detail(name, seconds, cpu = nil)
    @details << [name, seconds, cpu]
  end

  def cpu_seconds
    times = Process.times
    times.utime + times.stime + times.cutime + times.cstime
  end

  # CPU time of this process's children that ended (and were waited for) so far: taken
  # before and after one child, the child's own (its waited-for children included).
  def children_cpu_seconds
    times = Process.times
    times.cutime + times.cstime
  end

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # In a process the runner started: write this process's CPU time (its children's
  # included) and notes where the runner reads them.
  def record_at_exit
    return unless child?

    at_exit do
      File.write(ENV.fetch(RESULT_ENV),
                 JSON.generate(cpu: cpu_seconds, skipped: @skipped == true, note: @note, details: @details))
    end
  end

  # Runs the suites named (in lane order) and the builds they need; prints the table; fails
  # when one of them failed.
  def run(names)
    selected = names.map { |name| suites.find { |suite| suite.name == name } or abort "no suite #{name}" }
    needs = selected.flat_map(&:needs).uniq
    @started = now
    rows = []
    begin
      if ENV["PARALLEL"] == "0"
        run_serially(needs, selected, rows)
      else
        run_in_lanes(needs, selected, rows)
      end
    ensure
      print_table(rows)
    end
    failed = rows.reject { |row| %w[ok skipped].include?(row.status) }
    abort "rake test: failed: #{failed.map(&:name).join(', ')}" unless failed.empty?
  end

  def run_serially(needs, selected, rows)
    (needs.map { |name| [name, "-"] } + selected.map { |suite| ["test:#{suite.name}", suite.lane] }).each do |task, lane|
      @note = nil
      @skipped = false
      @details = []
      wall = now
      cpu = cpu_seconds
      status = "ok"
      begin
        Rake::Task[task].invoke
      rescue StandardError, SystemExit => e
        status = "FAILED"
        warn "#{task} failed: #{e.message}"
      end
      status = "skipped" if status == "ok" && @skipped
      rows << Row.new(name: task.delete_prefix("test:"), lane: lane, status: status, wall: now - wall,
                      cpu: cpu_seconds - cpu, note: @note, details: @details)
      break if status == "FAILED" && lane == "-"
    end
  end

  def run_in_lanes(needs, selected, rows)
    FileUtils.mkdir_p(LOG_DIR)
    @children = {}
    trap_interrupts
    say "logs in #{LOG_DIR.delete_prefix("#{ROOT}/")}/#{needs.empty? ? "" : "; builds: #{needs.join(", ")}"}"
    # The builds are independent of each other (debug and release profiles lock apart), and
    # start at once, beside the suites that need none of them.
    builds = needs.to_h { |name| [name, Thread.new { child(name, name, "-") }] }
    lanes = selected.group_by(&:lane).sort_by(&:first)
    say "#{lanes.size} lanes: #{lanes.map { |lane, suites| "#{lane}: #{suites.map(&:name).join(' → ')}" }.join('; ')}"
    # LANES=N: at most N lanes at a time (a busy machine), the next lane starting when one ends.
    slots = Queue.new
    Integer(ENV.fetch("LANES", lanes.size.to_s)).clamp(1, lanes.size).times { slots << true }
    done = lanes.map do |lane, suites|
      Thread.new do
        slot = slots.pop
        suites.map do |suite|
          failed = suite.needs.map { |name| builds.fetch(name).value }.reject { |row| row.status == "ok" }
          next child("test:#{suite.name}", suite.name, lane) if failed.empty?

          Row.new(name: suite.name, lane: lane, status: "not run", note: "#{failed.map(&:name).join(', ')} failed",
                  details: [])
        end
      ensure
        slots << slot
      end
    end.flat_map(&:value)
    built = builds.values.map(&:value)
    rows.concat(built + done)
    print_failed_logs(built + done)
  ensure
    stop_children
  end

  # Runs rake +task+ in a process of its own, output to its log; returns its row.
  def child(task, name, lane)
    log = log_path(name)
    result = "#{log}.result"
    FileUtils.rm_f([log, result])
    say "#{name} started"
    started = now
    pid = Process.spawn({ RESULT_ENV => result }, RbConfig.ruby, "-S", "rake", "-f", File.join(ROOT, "Rakefile"), task,
                        chdir: ROOT, out: log, err: %i[child out], pgroup: true)
    @output.synchronize { @children[pid] = name }
    _, status = Process.wait2(pid)
    @output.synchronize { @children.delete(pid) }
    wall = now - started
    recorded = File.exist?(result) ? JSON.parse(File.read(result)) : {}
    ok = status.success?
    note = recorded["note"]
    outcome = if !ok then "FAILED"
              elsif recorded["skipped"] then "skipped"
              else "ok"
              end
    say "#{name} #{outcome} in #{duration(wall)}#{note ? " (#{note})" : ''}"
    Row.new(name: name, lane: lane, status: outcome, wall: wall, cpu: recorded["cpu"], note: note,
            details: recorded["details"] || [])
  end

  def log_path(name)
    File.join(LOG_DIR, "#{name.tr(':', '-')}.log")
  end

  def trap_interrupts
    %w[INT TERM].each do |signal|
      trap(signal) do
        stop_children
        exit 130
      end
    end
  end

  # Ends the process groups this runner started and that still run (interrupted run).
  def stop_children
    (@children || {}).each_key do |pid|
      Process.kill("TERM", -pid)
    rescue Errno::ESRCH
      nil
    end
  end

  def print_failed_logs(rows)
    rows.select { |row| row.status == "FAILED" }.each do |row|
      puts "", "=" * 30 + " #{row.name} FAILED: its output (#{log_path(row.name).delete_prefix("#{ROOT}/")}) " + "=" * 30
      puts File.read(log_path(row.name))
      puts "=" * 30 + " end of #{row.name} " + "=" * 30
    end
  end

  def say(text)
    @output.synchronize { puts "[#{duration(now - @started)}] #{text}" }
    $stdout.flush
  end

  def duration(seconds)
    return "-" unless seconds

    seconds = seconds.round
    format("%d:%02d", seconds / 60, seconds % 60)
  end

  def print_table(rows)
    return if rows.empty?

    width = [rows.map { |row| row.name.size }.max, 20].max
    puts "", "Times (wall m:ss; CPU seconds, user + system, of the suite's processes, PostgreSQL's not counted):"
    puts format("  %-#{width}s  %-4s  %-7s  %6s  %7s  %s", "suite", "lane", "result", "wall", "CPU s", "")
    rows.each do |row|
      puts format("  %-#{width}s  %-4s  %-7s  %6s  %7s  %s", row.name, row.lane, row.status, duration(row.wall),
                  seconds(row.cpu), row.note)
      row.details.each do |name, wall, cpu|
        puts format("    %-#{width - 2}s  %-4s  %-7s  %6s  %7s", name, "", "", duration(wall), seconds(cpu))
      end
    end
    cpu = rows.sum { |row| row.cpu || 0 }
    puts format("  %-#{width}s  %-4s  %-7s  %6s  %7s", "total", "", "", duration(now - @started), seconds(cpu))
  end

  def seconds(value)
    value ? format("%.1f", value) : "-"
  end
end

SuiteRunner.record_at_exit
