# frozen_string_literal: true

# Puma in cluster mode for the end-to-end spec: 2 workers forked from a preloaded
# app, one thread each (so concurrent requests spread over both workers).
workers 2
threads 1, 1
preload_app!
environment "test"
bind "tcp://127.0.0.1:#{ENV.fetch('PORT')}"
rackup File.expand_path("../config.ru", __dir__)
pidfile ENV["PUMA_PIDFILE"] if ENV["PUMA_PIDFILE"]
