# frozen_string_literal: true

require "open3"
require "rbconfig"

RSpec.describe "the gem's top-level constants" do
  it "are only LogIngestionClient and LogIngestion, Rails glue included" do
    script = <<~RUBY
      require "rails"
      require "active_record/railtie"
      require "active_job/railtie"
      require "action_controller/railtie"
      require "rails/generators"
      before = Object.constants
      require "log_ingestion"
      require "log_ingestion/rails"
      require "generators/log_ingestion/install/install_generator"
      LogIngestion::Native.available? # loads the native extension, when built
      lib = File.expand_path(ARGV.fetch(0))
      ours = (Object.constants - before).select do |name|
        file, = Object.const_source_location(name)
        # Ruby stdlib constants loaded on the way (e.g. Shellwords) are not ours; a
        # constant without a Ruby source file was defined by a native extension.
        file.nil? || file.start_with?(lib)
      end
      print(ours.sort.inspect)
    RUBY
    out, err, status = Open3.capture3(RbConfig.ruby, "-I", File.expand_path("../../lib", __dir__), "-e", script,
                                     File.expand_path("../../lib", __dir__))

    expect(status).to be_success, err
    expect(out).to eq(%i[LogIngestion LogIngestionClient].inspect)
  end
end
