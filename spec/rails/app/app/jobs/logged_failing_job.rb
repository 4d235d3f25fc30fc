# frozen_string_literal: true

# FailingJob with the gem's JobLogging concern ("Job failed").
class LoggedFailingJob < FailingJob
  include LogIngestion::JobLogging
end
