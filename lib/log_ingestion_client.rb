# frozen_string_literal: true

# `require "log_ingestion_client"` works as well as `require "log_ingestion"`: the
# class LogIngestionClient lives in lib/log_ingestion/log_ingestion_client.rb.
require "log_ingestion"
