# frozen_string_literal: true

# Loads what the variant under measurement (BENCH_VARIANT) uses; required by
# config/application.rb right after Bundler.require. The Gemfile lists lograge and
# log_ingestion with `require: false` so one app serves every variant.
case ENV.fetch("BENCH_VARIANT")
when "rails" then nil
when "lograge" then require "lograge"
when /\Alog_ingestion/ then require "log_ingestion"
else raise ArgumentError, "unknown BENCH_VARIANT #{ENV['BENCH_VARIANT'].inspect}"
end
