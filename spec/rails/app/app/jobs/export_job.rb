# frozen_string_literal: true

class ExportJob < ApplicationJob
  include(LogIngestionTestApp::GUIDE_DIR ? LoggableJob : LogIngestion::JobLogging)
  queue_as :exports

  def perform(user_id, _options = {})
    Rails.logger.info("exporting user #{user_id}")
  end
end
