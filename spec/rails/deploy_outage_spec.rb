# frozen_string_literal: true

require_relative "support/rails_app"
require_relative "../support/real_ingestion_server"

# A deploy during a logging outage: Puma (2 workers, preloaded app) serves requests
# that log while the ingestion server is down, gets SIGTERM, and the next Puma --
# started once the server is back -- delivers what the first one spooled. Counted
# in the real server's database.
RSpec.describe "A Puma restart during an outage", :end_to_end do
  before(:all) do
    reason = RealIngestionServer.unavailable_reason
    reason ||= "the native extension is not built (rake compile)" unless LogIngestion::Native.available?
    skip "skipped: #{reason}" if reason

    @server = RealIngestionServer::Instance.new.start
    @dir = Dir.mktmpdir("li-rails-outage")
  end

  after(:all) do
    @server&.stop
    FileUtils.remove_entry(@dir) if @dir
  end

  def start_puma(service, spool_dir)
    port = RealIngestionServer.free_port
    env = { "RAILS_ENV" => "test", "PORT" => port.to_s,
            "LOG_INGESTION_URL" => @server.url, "LOG_INGESTION_API_KEY" => @server.api_key,
            "LOG_INGESTION_SERVICE" => service, "LOG_INGESTION_TEST_MODE" => nil,
            "LOG_INGESTION_TEST_BATCH_INTERVAL" => "0.1",
            "LOG_INGESTION_TEST_SPOOL_DIR" => spool_dir,
            "LOG_INGESTION_TEST_DB" => File.join(@dir, "#{service}.sqlite3"),
            "LOG_INGESTION_TEST_LOG" => File.join(@dir, "#{service}-rails.log"),
            "RUBYLIB" => [File.join(RealIngestionServer::ROOT, "lib"), ENV["RUBYLIB"]].compact.join(File::PATH_SEPARATOR) }
    puma = ChildProcess.new(env, [RbConfig.ruby, Gem.bin_path("puma", "puma"), "-C", "spec/rails/app/config/puma.rb"],
                            File.join(@dir, "#{service}-puma.log"))
    base = "http://127.0.0.1:#{port}"
    Polling.wait_until(timeout: 60, interval: 0.1, what: "puma at #{base}") do
      raise "puma exited:\n#{puma.log}" unless puma.alive?

      RealIngestionServer.http_ok?("#{base}/widgets/pid")
    end
    [puma, base]
  rescue StandardError
    puma&.stop
    raise
  end

  def count(sql_where)
    @server.psql("SELECT count(*) FROM logs WHERE #{sql_where}").to_i
  end

  def spool_files(dir)
    Dir.children(dir).grep(/\Alog_ingestion-.*\.spool/)
  rescue Errno::ENOENT
    []
  end

  it "loses nothing: the next Puma delivers every entry of the first exactly once" do
    spool_dir = File.join(@dir, "spool")
    before = "outage-before-#{SecureRandom.hex(4)}"
    after = "outage-after-#{SecureRandom.hex(4)}"
    request_ids = Array.new(40) { |i| "outage-#{i}-#{SecureRandom.hex(6)}" }

    @server.stop_serving
    puma, base = start_puma(before, spool_dir)
    begin
      codes = request_ids.each_slice(4).flat_map do |slice|
        slice.map do |id|
          Thread.new { Net::HTTP.get_response(URI("#{base}/widgets/greet"), { "X-Request-Id" => id }).code }
        end.map(&:value)
      end
    ensure
      puma.stop # SIGTERM: master and workers exit with the service down
    end
    expect(codes).to all(eq("200"))
    exit_lines = puma.log.lines.grep(/log_ingestion: shutdown:/)
    spooled = exit_lines.sum { |line| line[/(\d+) entries spooled/, 1].to_i }
    expect(exit_lines).to all(match(/refused the connection\): \d+ entries spooled to /))
    expect(exit_lines).to all(satisfy { |line| !line.include?("lost") }) # nothing lost: the line names no loss
    expect(exit_lines.size).to be <= 3 # one line per process (master and 2 workers), never one per batch
    expect(spooled).to be >= request_ids.size
    expect(spool_files(spool_dir)).not_to be_empty

    @server.serve_again
    puma, = start_puma(after, spool_dir)
    begin
      Polling.wait_until(timeout: 60, what: "#{spooled} recovered rows") { count("service = '#{before}'") >= spooled }
      Polling.wait_until(timeout: 30, what: "the spool to empty") { spool_files(spool_dir).empty? }
    ensure
      puma.stop
    end

    expect(count("service = '#{before}'")).to eq(spooled)
    greeted = @server.rows("SELECT metadata->>'request_id' FROM logs WHERE service = '#{before}' " \
                           "AND message = 'User greeted'")
    expect(greeted.sort).to eq(request_ids.sort) # each request's own entry, once
    duplicates = @server.psql("SELECT count(*) FROM (SELECT 1 FROM logs WHERE service = '#{before}' " \
                              "GROUP BY timestamp, level, message, metadata::text HAVING count(*) > 1) d").to_i
    expect(duplicates).to eq(0)
  end
end

RSpec.describe "The Railtie's spool default" do
  it "is tmp/log_ingestion/spool under the app, and config.log_ingestion.spool_dir wins over it" do
    script = 'require "./spec/rails/app/config/environment"; require "json"; ' \
             'puts JSON.generate([LogIngestion::Configuration.default_spool_dir, Rails.application.paths["tmp"].first, ' \
             "LogIngestionClient.client.configuration.effective_spool_dir])"
    env = { "RAILS_ENV" => "test", "LOG_INGESTION_TEST_DB" => File.join(Dir.tmpdir, "li-spool-default-#{Process.pid}.sqlite3") }
    out, err, status = Open3.capture3(env, RbConfig.ruby, "-Ilib", "-e", script, chdir: RealIngestionServer::ROOT)

    expect(status).to be_success, err
    default, tmp, in_use = JSON.parse(out.lines.last)
    expect(default).to eq(File.join(tmp, "log_ingestion", "spool"))
    expect(in_use).to be_nil # the test app sets spool_dir = false unless LOG_INGESTION_TEST_SPOOL_DIR says where
  end
end
