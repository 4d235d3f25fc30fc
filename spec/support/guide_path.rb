# frozen_string_literal: true

# Where the integration guide (ruby-on-rails-integration-guide.md) is read from, for
# every spec and benchmark that reads it: LOG_INGESTION_GUIDE when set, else
# ../shared/seed/ next to the repository root, else /work/shared/seed/. Owns that
# rule only; the guide is never copied into the repository.
module GuidePath
  NAME = "ruby-on-rails-integration-guide.md"
  BESIDE_REPOSITORY = File.expand_path("../../../shared/seed/#{NAME}", __dir__)
  FALLBACK = "/work/shared/seed/#{NAME}"

  # The guide's path (it may not exist: check with File.file?).
  def self.path
    from_env = ENV["LOG_INGESTION_GUIDE"]
    return from_env unless from_env.nil? || from_env.empty?

    File.file?(BESIDE_REPOSITORY) ? BESIDE_REPOSITORY : FALLBACK
  end
end
