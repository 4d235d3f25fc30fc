# frozen_string_literal: true

# Kept so that `require "log_ingestion/subscribers"` goes on working: the file lives under
# log_ingestion/rails/ with the rest of the Rails glue.
require "log_ingestion/rails/subscribers"
