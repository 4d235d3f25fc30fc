# frozen_string_literal: true

# One worker process with one thread, the app preloaded: every request of a run is
# served by the same process and thread, whose CPU time the benchmark reads.
workers 1
threads 1, 1
preload_app!
environment "production"
bind "tcp://127.0.0.1:#{ENV.fetch('PORT')}"
