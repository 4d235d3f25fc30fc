# frozen_string_literal: true

module LogIngestion
  # The monotonic millisecond clock behind every duration_ms the gem logs
  # (RequestLogging, ControllerLogging, JobLogging).
  #
  #   started = Stopwatch.now_ms
  #   ...
  #   Stopwatch.elapsed_ms(started) # => 12.34
  #
  # Owns: reading the monotonic clock and rounding durations to 0.01 ms. Never
  # reads the wall clock (a clock step must never make a duration negative).
  module Stopwatch
    # A monotonic clock reading in milliseconds, the start for +elapsed_ms+.
    def self.now_ms
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :float_millisecond)
    end

    # Milliseconds since +started+ (a +now_ms+ reading), rounded to 0.01.
    def self.elapsed_ms(started)
      (now_ms - started).round(2)
    end
  end
end
