# frozen_string_literal: true

require "spec_helper"
require "fileutils"
require "open3"
require "rbconfig"
require "tmpdir"

# LogIngestion::Native's choice of library, in fresh processes whose load path holds a
# copy of lib/'s Ruby files and whichever libraries a case needs (copies of the one
# `rake compile` built, or a file that is not a library at all).
RSpec.describe LogIngestion::Native do
  lib = File.expand_path("../../lib", __dir__)
  compiled = File.join(lib, "log_ingestion", "log_ingestion.so")
  abi = RUBY_VERSION[/\A\d+\.\d+/]

  around do |example|
    Dir.mktmpdir("log-ingestion-loader") do |dir|
      @dir = dir
      example.run
    end
  end

  # A load path directory with the gem's Ruby files and, per +libraries+
  # ({ "relative/path.so" => source file or :garbage }), libraries.
  def gem_lib(libraries)
    target = File.join(@dir, "lib")
    Dir.chdir(File.expand_path("../../lib", __dir__)) do
      Dir["**/*.rb"].each do |file|
        FileUtils.mkdir_p(File.join(target, File.dirname(file)))
        FileUtils.cp(file, File.join(target, file))
      end
    end
    libraries.each do |path, source|
      FileUtils.mkdir_p(File.join(target, File.dirname(path)))
      if source == :garbage
        File.write(File.join(target, path), "this is not a shared library\n" * 200)
      else
        FileUtils.cp(source, File.join(target, path))
      end
    end
    target
  end

  # Loads the extension in a fresh Ruby with only +load_path+; returns what it printed.
  def load_in_fresh_ruby(load_path)
    script = <<~RUBY
      require "log_ingestion"
      begin
        LogIngestion::Native.load!
        puts "loaded " + $LOADED_FEATURES.grep(/log_ingestion\\.so\\z/).join(",")
      rescue LoadError => e
        puts "error " + e.class.name + " " + e.message
        puts "available " + LogIngestion::Native.available?.inspect
      end
    RUBY
    out, err, status = Open3.capture3(RbConfig.ruby, "--disable-gems", "-I", load_path, "-e", script)
    expect(status).to be_success, "child failed: #{err}"
    out
  end

  it "loads the prebuilt library for the running Ruby's major.minor before the compiled one", :native do
    dir = gem_lib("log_ingestion/#{abi}/log_ingestion.so" => compiled, "log_ingestion/log_ingestion.so" => compiled)
    expect(load_in_fresh_ruby(dir)).to eq("loaded #{dir}/log_ingestion/#{abi}/log_ingestion.so\n")
  end

  it "falls back to the compiled library when no prebuilt one fits this Ruby", :native do
    dir = gem_lib("log_ingestion/9.9/log_ingestion.so" => compiled, "log_ingestion/log_ingestion.so" => compiled)
    expect(load_in_fresh_ruby(dir)).to eq("loaded #{dir}/log_ingestion/log_ingestion.so\n")
  end

  it "falls back to the compiled library when the prebuilt one does not load", :native do
    dir = gem_lib("log_ingestion/#{abi}/log_ingestion.so" => :garbage, "log_ingestion/log_ingestion.so" => compiled)
    expect(load_in_fresh_ruby(dir)).to eq("loaded #{dir}/log_ingestion/log_ingestion.so\n")
  end

  it "raises a LoadError naming the platform, the Ruby version and how to build from source" do
    out = load_in_fresh_ruby(gem_lib("log_ingestion/9.9/log_ingestion.so" => :garbage))
    expect(out).to start_with("error LogIngestion::NativeLoadError log_ingestion #{LogIngestion::VERSION}: " \
                              "no native extension for #{RUBY_PLATFORM} and Ruby #{RUBY_VERSION} ")
    expect(out).to include("(tried log_ingestion/#{abi}/log_ingestion (cannot load such file",
                           "gem install log_ingestion --platform ruby", "force_ruby_platform", "rake compile")
    expect(out).to end_with("available false\n")
  end

  it "says why a prebuilt library that exists did not load" do
    out = load_in_fresh_ruby(gem_lib("log_ingestion/#{abi}/log_ingestion.so" => :garbage))
    expect(out).to include("log_ingestion/#{abi}/log_ingestion (", "invalid ELF header")
  end
end
