# frozen_string_literal: true

# Kept so that `require "log_ingestion/exception_details"` goes on working: the file lives under
# log_ingestion/rails/ with the rest of the Rails glue.
require "log_ingestion/rails/exception_details"
