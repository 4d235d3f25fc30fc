# frozen_string_literal: true

# The Rails glue of the log_ingestion gem, in one require. `require "log_ingestion"`
# loads it by itself when Rails is already loaded; require this file when the gem is
# loaded before Rails (e.g. `gem "log_ingestion", require: "log_ingestion/rails"`).
require "rails"
require "log_ingestion"
require "log_ingestion/rails/railtie"
