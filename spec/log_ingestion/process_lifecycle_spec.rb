# frozen_string_literal: true

require "spec_helper"

# Behaviour that shows only across processes: exit, fork, signals.
RSpec.describe "LogIngestionClient across processes", :native do
  let(:server) { FakeIngestionServer.start }

  after { server.stop }

  def configure_script(url, settings = "")
    <<~RUBY
      require "log_ingestion"
      LogIngestionClient.configure do |c|
        c.api_url = #{url.inspect}
        c.api_key = "test-key"
        c.service = "process-spec"
        c.retry_delay = 0.01
        c.max_retry_delay = 0.05
        #{settings}
      end
    RUBY
  end

  it "delivers entries still queued when the process exits" do
    script = configure_script(server.url, "c.batch_interval = 60") + <<~RUBY
      5.times { |i| LogIngestionClient.info("queued at exit \#{i}") }
    RUBY
    _out, err, status = run_ruby(script)
    expect(status).to be_success, err
    expect(server.messages).to eq((0...5).map { |i| "queued at exit #{i}" })
  end

  it "reports at exit the entries it could not deliver within shutdown_timeout" do
    server.respond_with { :hang }
    script = configure_script(server.url, "c.shutdown_timeout = 0.3") + <<~RUBY
      LogIngestionClient.info("never answered")
    RUBY
    _out, err, status = run_ruby(script)
    expect(status).to be_success
    expect(err).to match(/shutdown: the service did not take everything within shutdown_timeout \(0\.3s\); no spool_dir is set \(1 entries lost\)/)
  end

  it "gives a forked child its own engine: parent and child entries each arrive once" do
    script = configure_script(server.url, "c.batch_interval = 0.05") + <<~RUBY
      LogIngestionClient.info("parent before fork")
      LogIngestionClient.flush(timeout: 5)
      LogIngestionClient.info("parent queued at fork")
      child = fork do
        taken = LogIngestionClient.info("from the child") # Process._fork's hook dropped the parent's engine: the child starts its own
        GC.start # the parent's engine, now unreferenced here, is freed without touching its threads
        LogIngestionClient.flush(timeout: 5)
        exit!(taken == true && LogIngestionClient.stats[:sent] == 1 ? 0 : 3)
      end
      _, status = Process.wait2(child)
      LogIngestionClient.info("parent after fork")
      LogIngestionClient.flush(timeout: 5)
      puts status.exitstatus
    RUBY
    out, err, status = run_ruby(script, timeout: 60)
    expect(status).to be_success, err
    expect(out.strip).to eq("0")
    expect(server.messages.tally).to eq("parent before fork" => 1, "parent queued at fork" => 1,
                                        "from the child" => 1, "parent after fork" => 1)
  end

  it "tells a client in a forked child through Process._fork, before its first call, to start its own delivery; the parent's is untouched" do
    client = LogIngestion::Client.new.configure(
      LogIngestion::Configuration.new(api_url: server.url, api_key: "test-key", service: "process-spec",
                                      batch_interval: 0.05, retry_delay: 0.01, max_retry_delay: 0.05)
    )
    expect(client.log("INFO", "parent before fork")).to be(true)
    expect(client.flush(timeout: 5)).to be(true)
    parent_delivery = client.instance_variable_get(:@delivery)
    reader, writer = IO.pipe
    child = fork do
      reader.close
      dropped = client.instance_variable_get(:@delivery).nil? # no call made yet: the hook did it
      taken = client.log("INFO", "from the child")
      flushed = client.flush(timeout: 5)
      writer.write([dropped, taken, flushed, client.stats[:sent]].inspect)
      writer.close
      exit!(0)
    end
    writer.close
    from_child = reader.read
    reader.close
    Process.wait(child)
    expect(from_child).to eq("[true, true, true, 1]")
    expect(client.instance_variable_get(:@delivery)).to equal(parent_delivery)
    expect(client.log("INFO", "parent after fork")).to be(true)
    expect(client.flush(timeout: 5)).to be(true)
    expect(client.stats[:sent]).to eq(2)
    expect(server.messages.tally).to eq("parent before fork" => 1, "from the child" => 1, "parent after fork" => 1)
  ensure
    client&.shutdown(timeout: 1)
  end

  # Process.daemon forks without Process._fork: the native engine's own check is the net.
  it "catches a fork the hook does not see (Process.daemon) at the first log call: the parent's engine answers nil" do
    script = configure_script(server.url, "c.batch_interval = 0.05") + <<~RUBY
      LogIngestionClient.info("before daemon")
      LogIngestionClient.flush(timeout: 5)
      Process.daemon(true, true)
      taken = LogIngestionClient.info("from the daemon")
      flushed = LogIngestionClient.flush(timeout: 5)
      puts [taken, flushed, LogIngestionClient.stats[:sent]].inspect
    RUBY
    out, err, status = run_ruby(script)
    expect(status).to be_success, err
    expect(out.strip).to eq("[true, true, 1]")
    expect(server.messages.tally).to eq("before daemon" => 1, "from the daemon" => 1)
  end

  it "gives a forked child its own delivery in test mode too: the child's entries are recorded by it" do
    script = <<~RUBY
      require "log_ingestion"
      LogIngestionClient.test_mode!
      LogIngestionClient.info("parent")
      parent_delivery = LogIngestionClient.client.instance_variable_get(:@delivery)
      reader, writer = IO.pipe
      child = fork do
        reader.close
        taken = LogIngestionClient.info("child", { n: 1 })
        replaced = !LogIngestionClient.client.instance_variable_get(:@delivery).equal?(parent_delivery)
        writer.write([taken, replaced, LogIngestionClient.recorded_entries.map { |e| e[:message] }].inspect)
        writer.close
        exit!(0)
      end
      writer.close
      puts reader.read
      Process.wait(child)
      puts LogIngestionClient.recorded_entries.map { |e| e[:message] }.inspect
    RUBY
    out, err, status = run_ruby(script)
    expect(status).to be_success, err
    expect(out.lines.map(&:chomp)).to eq(['[true, true, ["parent", "child"]]', '["parent"]'])
  end

  it "gives a forked child its own process id from the native cache (cleared by the fork handler)" do
    LogIngestion::Native.load!
    parent = LogIngestion::Native.process_id
    reader, writer = IO.pipe
    child = fork do
      reader.close
      writer.write(LogIngestion::Native.process_id.to_s)
      writer.close
      exit!(0)
    end
    writer.close
    seen_in_child = reader.read
    reader.close
    Process.wait(child)
    expect(parent).to eq(Process.pid)
    expect(Integer(seen_in_child)).to eq(child)
    expect(LogIngestion::Native.process_id).to eq(Process.pid)
  end

  it "lets a forked child that exits normally flush its own entries at exit" do
    script = configure_script(server.url, "c.batch_interval = 60") + <<~RUBY
      LogIngestionClient.info("parent")
      pid = fork { LogIngestionClient.info("child at exit") }
      Process.wait(pid)
      LogIngestionClient.flush(timeout: 5)
    RUBY
    _out, err, status = run_ruby(script)
    expect(status).to be_success, err
    expect(server.messages.tally).to eq("parent" => 1, "child at exit" => 1)
  end

  it "exits promptly with Interrupt when Ctrl-C arrives during a flush" do
    server.respond_with { :hang }
    script = configure_script(server.url, "c.shutdown_timeout = 0.2") + <<~RUBY
      LogIngestionClient.info("stuck")
      $stdout.puts "flushing"
      $stdout.flush
      LogIngestionClient.flush(timeout: 120)
      $stdout.puts "flush returned"
    RUBY
    spawn_ruby(script) do |_stdin, stdout, stderr, wait|
      wait_for_line(stdout, "flushing")
      server.wait_for_requests(1)
      Process.kill("INT", wait.pid)
      expect(wait.join(15)).to be_truthy, "the child was still flushing 15 s after SIGINT"
      expect(stdout.read).not_to include("flush returned")
      expect(stderr.read).to include("Interrupt")
      expect(wait.value).not_to be_success
    end
  end
end
