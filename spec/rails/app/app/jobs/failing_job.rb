# frozen_string_literal: true

class FailingJob < ApplicationJob
  include LoggableJob if LogIngestionTestApp::GUIDE_DIR

  class Failure < StandardError; end

  def perform(user_id, _options = {})
    raise Failure, "job for user #{user_id} failed"
  end
end
