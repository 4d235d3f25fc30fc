# frozen_string_literal: true

class ExportJob < ApplicationJob
  include LoggableJob if LogIngestionTestApp::GUIDE_DIR
  queue_as :exports

  def perform(user_id, *_details)
    Rails.logger.info("exporting user #{user_id}")
  end
end
