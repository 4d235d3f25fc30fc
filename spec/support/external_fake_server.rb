# frozen_string_literal: true

require "json"
require "open3"
require "rbconfig"

# A FakeIngestionServer in a child process, for specs whose own process runs under
# GC.stress (an in-process server would be slowed down by it as much as the code
# under test). `mode` is :accept or :unauthorized. `finish` stops it and returns the
# messages it received.
class ExternalFakeServer
  SCRIPT = <<~RUBY
    require_relative #{File.expand_path('fake_ingestion_server', __dir__).inspect}
    server = FakeIngestionServer.start(api_key: nil)
    if ARGV[0] == "unauthorized"
      server.respond_with { [401, {}, { error: "Invalid API key" }] }
    end
    $stdout.puts server.url
    $stdout.flush
    $stdin.read
    $stdout.puts JSON.generate(server.messages)
    server.stop
  RUBY

  attr_reader :url

  def self.start(mode = :accept)
    new(mode)
  end

  def initialize(mode)
    @stdin, @stdout, @wait = Open3.popen2(RbConfig.ruby, "-e", SCRIPT, mode.to_s)
    @url = @stdout.gets.to_s.strip
  end

  def finish
    @stdin.close
    messages = JSON.parse(@stdout.read)
    @wait.join
    messages
  end
end
