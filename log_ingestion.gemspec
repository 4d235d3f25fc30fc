# frozen_string_literal: true

require_relative "lib/log_ingestion/version"

Gem::Specification.new do |spec|
  spec.name = "log_ingestion"
  spec.version = LogIngestion::VERSION
  spec.summary = "Structured logs from Ruby and Rails apps to the log ingestion service, delivered by a Rust core"
  spec.description = <<~TEXT
    LogIngestionClient, the client of the Rails integration guide with the same interface, on a Rust core
    (magnus): log calls convert and enqueue without waiting on the network; native threads batch, gzip and
    retry with backoff, honour 429 Retry-After, bound memory in bytes, flush at exit and survive fork.
  TEXT
  spec.authors = ["log_ingestion contributors"]
  spec.license = "MIT"
  # 3.1 (Debian 12's) is the Ruby the gem is tested on; newer ones are not tested here.
  spec.required_ruby_version = ">= 3.1"

  crate_files = %w[ext/log_ingestion ext/engine ext/wire].flat_map do |crate|
    Dir["#{crate}/Cargo.toml", "#{crate}/src/**/*.rs"]
  end
  docs = ["README.md", "CHANGELOG.md", "LICENSE", "docs/gem.md", "docs/rails.md"]
  spec.files = Dir["lib/**/*.rb", "lib/**/*.rake", "lib/generators/**/*", "sig/**/*.rbs"] + docs +
               crate_files + ["ext/log_ingestion/extconf.rb", "Cargo.lock"]
  spec.files = spec.files.uniq.select { |path| File.file?(path) }
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/log_ingestion/extconf.rb"]
  spec.metadata["rubygems_mfa_required"] = "true"
  # Placeholders: the maintainer puts the public repository's address here before the first release.
  repository = "https://example.com/CHANGE-ME/log_ingestion"
  spec.homepage = repository
  spec.metadata["source_code_uri"] = repository
  spec.metadata["changelog_uri"] = "#{repository}/blob/main/CHANGELOG.md"
end
