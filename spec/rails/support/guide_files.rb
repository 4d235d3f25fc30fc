# frozen_string_literal: true

require "fileutils"
require_relative "../../support/guide_path"

# Extracts, at run time, the hand-written Rails files of the integration guide (its
# ```ruby blocks, recognised by their first-line path comment) into a directory laid
# out for spec/rails/app (LOG_INGESTION_GUIDE_DIR). Nothing of the guide is copied
# into the repository.
module GuideFiles
  # guide path comment => where spec/rails/app loads it from
  FILES = {
    "app/controllers/concerns/loggable.rb" => "autoload/loggable.rb",
    "app/jobs/concerns/loggable_job.rb" => "autoload/loggable_job.rb",
    "app/middleware/request_logging_middleware.rb" => "lib/request_logging_middleware.rb",
    "app/lib/log_ingestion_logger.rb" => "lib/log_ingestion_logger.rb",
    "config/initializers/active_support_notifications.rb" => "initializers/active_support_notifications.rb"
  }.freeze

  # Where the guide is read from (GuidePath: LOG_INGESTION_GUIDE, else beside the repository).
  def self.guide_path
    GuidePath.path
  end

  def self.available?
    File.file?(guide_path)
  end

  # { "app/controllers/concerns/loggable.rb" => "module Loggable ..." } for every ruby block with a path comment.
  def self.blocks(text = File.read(guide_path))
    text.scan(/^```ruby\n(.*?)^```/m).flatten.each_with_object({}) do |code, found|
      first = code.lines.first.to_s.strip
      found[Regexp.last_match(1)] = code if first =~ %r{\A#\s*(\S+\.rb)\z}
    end
  end

  # Writes the five files into +dir+; raises when the guide lacks one.
  def self.extract(dir)
    found = blocks
    FILES.each do |guide_name, target|
      code = found.fetch(guide_name) { raise "the guide has no ```ruby block for #{guide_name}" }
      path = File.join(dir, target)
      FileUtils.mkdir_p(File.dirname(path))
      File.write(path, code)
    end
    dir
  end
end
