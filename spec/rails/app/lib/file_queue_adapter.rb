# frozen_string_literal: true

require "json"
require "securerandom"

# An ActiveJob queue adapter for the end-to-end spec: each enqueued job's serialized
# payload is written as JSON to a directory, and `work_off` runs them in whatever
# process calls it -- so a job runs in another process than the request that
# enqueued it, as with a real queue (Sidekiq, GoodJob), from the payload alone.
class FileQueueAdapter
  def initialize(dir)
    @dir = dir
  end

  def enqueue(job)
    path = File.join(@dir, "#{Time.now.strftime('%s%N')}-#{SecureRandom.hex(4)}.json")
    File.write("#{path}.tmp", JSON.generate(job.serialize))
    File.rename("#{path}.tmp", path) # a reader never sees half a payload
  end

  def enqueue_at(job, _timestamp)
    enqueue(job)
  end

  # Runs every queued job once, oldest first; returns how many ran.
  def self.work_off(dir)
    Dir.glob(File.join(dir, "*.json")).sort.each do |path|
      ActiveJob::Base.execute(JSON.parse(File.read(path)))
      File.delete(path)
    end.size
  end
end
