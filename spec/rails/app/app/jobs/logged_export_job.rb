# frozen_string_literal: true

# ExportJob with the gem's JobLogging concern ("Job started" / "Job completed").
class LoggedExportJob < ExportJob
  include LogIngestion::JobLogging
end
