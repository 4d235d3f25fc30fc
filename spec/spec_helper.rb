# frozen_string_literal: true

# Loads the gem from this repository's lib/ (the native extension at
# lib/log_ingestion/log_ingestion.so, built by `rake compile`) and the spec support.
#
# Tags:
#   :native      needs the native extension (skipped with a message when it is not built)
#   :server      needs the real ingestion server binary and PostgreSQL
#   :gc_stress   the binding specs; `LOG_INGESTION_GC_STRESS=1 rspec` runs only them,
#                with GC.stress on around every call into the binding (`native_call`)
lib = File.expand_path("../lib", __dir__)
$LOAD_PATH.unshift(lib) unless $LOAD_PATH.include?(lib)

require "log_ingestion"
Dir[File.join(__dir__, "support", "*.rb")].sort.each { |file| require file }

# Runs calls into the native binding under GC.stress when LOG_INGESTION_GC_STRESS=1,
# so a Ruby object the binding failed to keep alive is collected at once and shows.
module GCStress
  def self.enabled?
    ENV["LOG_INGESTION_GC_STRESS"] == "1"
  end

  def native_call
    return yield unless GCStress.enabled?

    begin
      GC.stress = true
      yield
    ensure
      GC.stress = false
    end
  end
end

RSpec.configure do |config|
  config.expect_with(:rspec) { |c| c.syntax = :expect }
  config.disable_monkey_patching!
  config.order = :defined

  # The Rails glue sets the default metadata_filter of every client; the specs
  # outside spec/rails start without one (spec/rails sets its own before each; this
  # file may load after spec/rails/support, so its hooks may run later).
  config.before(:each) do |example|
    LogIngestion::Client.default_metadata_filter = nil unless example.metadata[:rails_app]
  end

  # Booting the test Rails app sets the Railtie's default spool directory (its tmp/,
  # Dir.tmpdir there): every spec runs without a spool unless it gives one, so no
  # spec's undelivered entries reach another spec's server.
  config.before(:each) { LogIngestion::Configuration.default_spool_dir = nil }

  config.before(:each, :native) do
    skip "native extension not built (run `rake compile`)" unless LogIngestion::Native.available?
  end

  config.before(:each, :server) do
    skip "ingestion server not available: #{RealIngestionServer.unavailable_reason}" unless RealIngestionServer.available?
  end

  config.filter_run_including(:gc_stress) if GCStress.enabled?
  config.include(GCStress)

  # RSpec loads most built-in matchers on first use (autoload). Under GC.stress they are loaded
  # before the first example: loaded inside `native_call`, a matcher's file is compiled with a
  # collection at every allocation (minutes of CPU that exercise RSpec, not the binding).
  config.before(:suite) do
    next unless GCStress.enabled?

    RSpec::Matchers::BuiltIn.constants.each { |name| RSpec::Matchers::BuiltIn.const_get(name) }
  end
end
