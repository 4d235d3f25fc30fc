# frozen_string_literal: true

class FailingJob < ApplicationJob
  include(LogIngestionTestApp::GUIDE_DIR ? LoggableJob : LogIngestion::JobLogging)

  class Failure < StandardError; end

  def perform(user_id, _options = {})
    raise Failure, "job for user #{user_id} failed"
  end
end
