# frozen_string_literal: true

# The gem packages (issue 12): the source gem, which builds its extension with cargo at
# install time, and the precompiled platform gem, whose extension is built here with
# cargo-zigbuild against glibc 2.17 (manylinux2014's floor) and installs without Rust.
#
# Owns: the two cross-build tools (`rake native:tools`, run by bin/setup), the prebuilt
# library's build and what each package holds. Never writes into lib/ (a prebuilt library
# there would shadow the one `rake compile` builds): packages are staged under tmp/ and
# written to pkg/.
#
#   rake gem:source                     pkg/log_ingestion-VERSION.gem
#   rake native:gem                     pkg/log_ingestion-VERSION-x86_64-linux.gem
#   rake "native:gem[aarch64-linux]"    needs the target Ruby's rbconfig.rb and headers (README, Installing)

require "fileutils"
require "rubygems/package"
require_relative "../lib/log_ingestion/version"
require_relative "../lib/log_ingestion/native"

# Builds the packages; used by the tasks below and nothing else.
module GemPackages
  ROOT = File.expand_path("..", __dir__)
  PKG_DIR = File.join(ROOT, "pkg")
  # Versions installed by `rake native:tools` when the tool is missing (a present one is kept).
  CARGO_ZIGBUILD_VERSION = "0.24.1"
  ZIGLANG_VERSION = "0.17.1"
  GLIBC_FLOOR = "2.17"
  # Cargo profile of the prebuilt library (Cargo.toml: release without the symbol table).
  CARGO_PROFILE = "native-gem"
  RUST_TARGETS = { "x86_64-linux" => "x86_64-unknown-linux-gnu", "aarch64-linux" => "aarch64-unknown-linux-gnu" }.freeze
  # What only the source gem needs: the crates, their lock file and the extconf.rb that builds them.
  SOURCE_ONLY = %r{\A(ext/|Cargo\.lock\z)}.freeze

  module_function

  # A copy of the gemspec to change freely (Gem::Specification.load caches one instance).
  def gemspec
    spec = Dir.chdir(ROOT) { Gem::Specification.load("log_ingestion.gemspec") } or
      abort "log_ingestion.gemspec did not load"
    spec.dup
  end

  def cargo_target_dir
    ENV["CARGO_TARGET_DIR"] || File.join(ROOT, "target")
  end

  def quiet_success?(*cmd)
    system(*cmd, out: File::NULL, err: File::NULL) == true
  end

  # cargo-zigbuild from crates.io and Zig from PyPI's ziglang, each skipped when present.
  def install_tools
    if quiet_success?("cargo-zigbuild", "--version")
      puts "native:tools: cargo-zigbuild present"
    else
      run("cargo", "install", "cargo-zigbuild", "--locked", "--version", CARGO_ZIGBUILD_VERSION)
    end
    # cargo-zigbuild runs `zig` from PATH, else `python3 -m ziglang`.
    if quiet_success?("zig", "version") || quiet_success?("python3", "-m", "ziglang", "version")
      puts "native:tools: zig present"
    else
      run("python3", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "ziglang==#{ZIGLANG_VERSION}")
    end
  end

  # RBCONFIG_* variables that make rb-sys read the target Ruby's configuration (its
  # rbconfig.rb, loaded in a module of its own) instead of running the host's Ruby;
  # empty when building for the host.
  def target_ruby_env(platform)
    return {} if platform == Gem::Platform.local.to_s

    rbconfig_path = ENV["LOG_INGESTION_TARGET_RBCONFIG"] or
      abort "native:gem[#{platform}]: set LOG_INGESTION_TARGET_RBCONFIG to the rbconfig.rb of a Ruby for #{platform}"
    namespace = Module.new
    namespace.module_eval(File.read(rbconfig_path), rbconfig_path)
    config = namespace.const_get(:RbConfig)::CONFIG
    env = config.to_h { |key, value| ["RBCONFIG_#{key}", value.to_s] }
    env.merge("RBCONFIG_CROSS_COMPILING" => "yes")
  end

  # The Ruby major.minor the library is built for (the host's, or the target rbconfig.rb's).
  def target_ruby_abi(ruby_env)
    version = ruby_env.empty? ? RUBY_VERSION : ruby_env.fetch("RBCONFIG_ruby_version")
    LogIngestion::Native.ruby_abi(version)
  end

  # Builds the extension for +platform+ against glibc GLIBC_FLOOR; returns its path.
  def build_library(platform, ruby_env)
    triple = RUST_TARGETS.fetch(platform) { abort "native:gem: no Rust target for #{platform}" }
    run("cargo", "zigbuild", "--profile", CARGO_PROFILE, "--locked", "-p", "log_ingestion", "--lib",
        "--target", "#{triple}.#{GLIBC_FLOOR}", env: ruby_env)
    File.join(cargo_target_dir, triple, CARGO_PROFILE, "liblog_ingestion.so")
  end

  # The gemspec for +platform+ with prebuilt libraries for +abis+ (Ruby major.minor
  # versions) and no sources: installing it runs no build, and it installs only on the
  # Ruby versions it has a library for.
  def platform_spec(platform, abis)
    spec = gemspec
    spec.platform = Gem::Platform.new(platform)
    spec.extensions = []
    spec.files = spec.files.grep_v(SOURCE_ONLY) + abis.map { |abi| library_path(abi) }
    newest = Gem::Version.new(abis.max_by { |abi| Gem::Version.new(abi) })
    spec.required_ruby_version = [">= #{abis.min_by { |abi| Gem::Version.new(abi) }}",
                                  "< #{newest.segments[0]}.#{newest.segments[1] + 1}.dev"]
    spec
  end

  def library_path(abi)
    "lib/log_ingestion/#{abi}/log_ingestion.so"
  end

  # Writes pkg/<spec's file name> from the files under +dir+; returns its path.
  def package(spec, dir)
    FileUtils.mkdir_p(PKG_DIR)
    built = Dir.chdir(dir) { File.expand_path(Gem::Package.build(spec)) }
    destination = File.join(PKG_DIR, spec.file_name)
    FileUtils.mv(built, destination) unless built == destination
    puts "built #{destination}"
    destination
  end

  def source_gem_path
    File.join(PKG_DIR, gemspec.file_name)
  end

  def platform_gem_path(platform = Gem::Platform.local.to_s)
    spec = gemspec
    spec.platform = Gem::Platform.new(platform)
    File.join(PKG_DIR, spec.file_name)
  end

  def build_source_gem
    package(gemspec, ROOT)
  end

  def build_platform_gem(platform)
    ruby_env = target_ruby_env(platform)
    library = build_library(platform, ruby_env)
    abi = target_ruby_abi(ruby_env)
    spec = platform_spec(platform, [abi])
    stage = File.join(ROOT, "tmp", "platform-gem", platform)
    FileUtils.rm_rf(stage)
    spec.files.each do |file|
      FileUtils.mkdir_p(File.join(stage, File.dirname(file)))
      FileUtils.cp(file == library_path(abi) ? library : File.join(ROOT, file), File.join(stage, file))
    end
    package(spec, stage)
  end
end

namespace :gem do
  desc "Build the source gem (compiles with cargo at install) into pkg/"
  task :source do
    GemPackages.build_source_gem
  end
end

namespace :native do
  desc "Install the platform gem's build tools when missing: cargo-zigbuild (crates.io), Zig (PyPI ziglang)"
  task :tools do
    GemPackages.install_tools
  end

  desc "Build the precompiled platform gem (default: this machine's platform) into pkg/"
  task :gem, [:platform] => :tools do |_task, args|
    GemPackages.build_platform_gem(args[:platform] || Gem::Platform.local.to_s)
  end
end
