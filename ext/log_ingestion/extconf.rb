# frozen_string_literal: true

# Writes the Makefile that builds the native extension with cargo.
#
# RubyGems runs this at `gem install` (then `make clean`, `make`, `make install`
# with sitearchdir pointing into the gem); in the repository `rake compile` runs it
# and installs into lib/. The `rb_sys` gem is not used: the Makefile drives cargo
# itself and copies the cdylib to log_ingestion/log_ingestion.so under sitearchdir.
#
# Inside the repository the crate is a member of the root workspace (shared target/
# and Cargo.lock). Inside an installed gem there is no workspace: the crate builds
# standalone with the gem's copy of Cargo.lock, in ext/log_ingestion/target, which is
# removed after installation.
require "mkmf"
require "fileutils"

crate_dir = __dir__
gem_root = File.expand_path("../..", crate_dir)
root_manifest = File.join(gem_root, "Cargo.toml")
in_workspace = File.exist?(root_manifest) && File.read(root_manifest).include?("[workspace]")

unless in_workspace
  # Standalone: make the crate its own workspace root, so cargo does not adopt a
  # workspace found further up (e.g. a gem installed under vendor/ of a Rust project).
  manifest = File.join(crate_dir, "Cargo.toml")
  manifest_text = File.read(manifest)
  unless manifest_text.match?(/^\[workspace\]/)
    File.write(manifest, "#{manifest_text.chomp}\n\n# Added at gem installation: build standalone.\n[workspace]\n")
  end

  shipped_lock = File.join(gem_root, "Cargo.lock")
  crate_lock = File.join(crate_dir, "Cargo.lock")
  FileUtils.cp(shipped_lock, crate_lock) if File.exist?(shipped_lock) && !File.exist?(crate_lock)
end

cargo = ENV.fetch("CARGO", "cargo")
unless find_executable(cargo)
  # Reached when no prebuilt platform gem was chosen (another platform or Ruby, or the
  # Ruby platform forced): say which, and both ways out.
  abort "log_ingestion: cargo (Rust >= 1.80) is required to build the native extension from source " \
        "(no prebuilt gem used for #{RUBY_PLATFORM}, Ruby #{RUBY_VERSION}). Install Rust (https://rustup.rs) " \
        "and install the gem again; on x86_64-linux with a Ruby the prebuilt gem names, do not force the Ruby " \
        "platform (`--platform ruby`, Bundler's force_ruby_platform) and the prebuilt gem installs without Rust"
end

profile = ENV.fetch("LOG_INGESTION_CARGO_PROFILE", "release")
# Cargo features of the build; only `rake compile:test` sets one (test-hooks: the specs'
# LogIngestion::Native.panic_for_testing). Gems are built without.
features = ENV.fetch("LOG_INGESTION_CARGO_FEATURES", "").strip
feature_flags = features.empty? ? "" : " --features #{features}"
own_target = !ENV.key?("CARGO_TARGET_DIR") && !in_workspace
target_dir = ENV["CARGO_TARGET_DIR"] || (in_workspace ? File.join(gem_root, "target") : File.join(crate_dir, "target"))
profile_dir = profile == "dev" ? "debug" : profile
soext = RbConfig::CONFIG["SOEXT"] || "so"
built = File.join(target_dir, profile_dir, "liblog_ingestion.#{soext}")
dllib = "log_ingestion.#{RbConfig::CONFIG['DLEXT']}"

makefile = configuration(crate_dir).join
makefile << <<~MAKE

  CARGO = #{cargo}
  CARGO_PROFILE = #{profile}
  CARGO_MANIFEST = #{File.join(crate_dir, 'Cargo.toml')}
  CARGO_TARGET = #{target_dir}
  CARGO_BUILT = #{built}
  TARGET_SO = #{dllib}
  INSTALL_SO_DIR = $(DESTDIR)$(sitearchdir)/log_ingestion

  all: $(TARGET_SO)

  $(TARGET_SO): FORCE
  \t$(CARGO) build --profile $(CARGO_PROFILE) --manifest-path "$(CARGO_MANIFEST)" --target-dir "$(CARGO_TARGET)" --lib#{feature_flags}
  \t$(INSTALL_PROG) "$(CARGO_BUILT)" $(TARGET_SO)

  install: all
  \t$(MAKEDIRS) "$(INSTALL_SO_DIR)"
  \t$(INSTALL_PROG) $(TARGET_SO) "$(INSTALL_SO_DIR)/$(TARGET_SO)"
  #{own_target ? "\t-$(RM_RF) \"$(CARGO_TARGET)\"" : "\t@$(NULLCMD)"}

  clean:
  \t-$(RM) $(TARGET_SO)

  distclean: clean
  \t-$(RM) Makefile

  static install-so install-rb:
  \t@$(NULLCMD)

  FORCE:

  .PHONY: all install clean distclean static install-so install-rb FORCE
MAKE

File.write("Makefile", makefile)
