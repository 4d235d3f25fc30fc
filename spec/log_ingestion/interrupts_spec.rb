# frozen_string_literal: true

require "spec_helper"
require "timeout"

# The host's control flow passes through a log call untouched: a metadata value's
# to_s/iso8601 or the metadata_filter interrupted by Timeout.timeout, Interrupt, exit,
# throw, Thread#kill or a rack-timeout-style Thread#raise ends the call the way the
# host meant, and the client keeps working afterwards. Each is proved in test mode and
# through the native engine (a real HTTP delivery to the fake server).
module InterruptingValues
  # A to_s that takes a minute: what a timeout interrupts (and only an interrupt ends
  # it in time). Says whether it began and whether it ran to its end.
  class Slow
    attr_reader :began, :finished

    def to_s
      @began = true
      sleep 60
      @finished = true
      "slow"
    end
  end

  # An iso8601 that takes a minute (answered by Date-like values).
  class SlowDate
    attr_reader :began, :finished

    def iso8601
      @began = true
      sleep 60
      @finished = true
      "2026-01-01"
    end
  end

  # A to_s that throws to the host's catch.
  class Thrower
    def to_s
      throw :host_tag, :thrown
    end
  end

  # A to_s that blocks until released, announcing itself first.
  class Blocking
    def initialize(entered, gate)
      @entered = entered
      @gate = gate
    end

    def to_s
      @entered << true
      @gate.pop
      "released"
    end
  end

  # rack-timeout's RequestTimeoutException: raised into the request's thread by
  # Thread#raise, and not a StandardError.
  class RequestTimeout < Exception # rubocop:disable Lint/InheritException
  end

  # rack-timeout's other class: a RuntimeError whose name says Timeout.
  class RequestTimeoutError < RuntimeError
  end
end

RSpec.describe "a log call and the host's interrupts", :native, :gc_stress do
  let(:server) { FakeIngestionServer.start }
  let(:clients) { [] }

  after do
    clients.each { |client| client.shutdown(timeout: 0.5) }
    server.stop
  end

  # The host's timeout: long enough for the call to reach the value's method first
  # (under GC.stress every allocation collects), far shorter than that method's minute.
  def host_timeout
    GCStress.enabled? ? 5.0 : 0.3
  end

  # Runs +block+ in a thread that reports itself, when +entered+ gets a value, to the
  # caller's block (which then interrupts it); returns the thread once it ended (the
  # caller reads how through Thread#value).
  def interrupted_thread(entered, block)
    thread = Thread.new { native_call { block.call } }
    thread.report_on_exception = false
    entered.pop
    yield thread
    begin
      thread.join(10)
    rescue Exception # rubocop:disable Lint/RescueException
      nil # how it ended is the caller's to check, through Thread#value
    end
    thread
  end

  {
    "test mode" => :test_mode,
    "the native engine" => :engine
  }.each do |name, mode|
    context "through #{name}" do
      define_method(:new_client) do |**settings|
        configuration =
          if mode == :test_mode
            LogIngestion::Configuration.new(test_mode: true, service: "interrupts", **settings)
          else
            LogIngestion::Configuration.new(api_url: server.url, api_key: "test-key", service: "interrupts",
                                            batch_interval: 0.05, on_error: ->(_report) {}, **settings)
          end
        LogIngestion::Client.new.configure(configuration).tap { |client| clients << client }
      end

      # [message, metadata] of what reached the recorder (test mode) or the server (engine).
      define_method(:delivered) do |client, expected|
        entries =
          if mode == :test_mode
            client.recorded_entries.map { |entry| entry.transform_keys(&:to_s) }
          else
            client.flush(timeout: 10)
            server.wait_for_entries(expected)
          end
        entries.map { |entry| [entry["message"], entry["metadata"]] }
      end

      # The client works on: the next entry is taken and delivered with its own metadata
      # only (nothing of the interrupted conversion left in this thread's buffers), and
      # the interrupted one was neither sent nor counted as the gem's failure.
      define_method(:expect_client_works_on) do |client|
        expect(native_call { client.log("INFO", "next entry", { n: 1, list: [2] }) }).to be(true)
        expect(delivered(client, 1)).to eq([["next entry", { "list" => [2], "n" => 1 }]])
        expect(client.stats).to include(enqueued: 1, dropped_internal: 0, dropped_invalid: 0)
      end

      # Swallowed, the interrupt would let the call (and the block) run on to its end.
      it "lets Timeout.timeout interrupt a value's slow to_s inside it, and the block ends there" do
        client = new_client
        slow = InterruptingValues::Slow.new
        ran_on = false
        expect do
          Timeout.timeout(host_timeout) do
            native_call { client.log("INFO", "timed out", { before: "written", nested: { deeper: [1, slow] } }) }
            ran_on = true
          end
        end.to raise_error(Timeout::Error)
        expect([slow.began, slow.finished, ran_on]).to eq([true, nil, false])
        expect_client_works_on(client)
      end

      it "lets Timeout.timeout interrupt a value's slow iso8601 inside it, and the block ends there" do
        client = new_client
        slow = InterruptingValues::SlowDate.new
        ran_on = false
        expect do
          Timeout.timeout(host_timeout) do
            native_call { client.log("INFO", "timed out", { at: slow }) }
            ran_on = true
          end
        end.to raise_error(Timeout::Error)
        expect([slow.began, slow.finished, ran_on]).to eq([true, nil, false])
        expect_client_works_on(client)
      end

      it "lets a throw in a value's to_s reach the host's catch" do
        client = new_client
        ran_on = false
        caught = catch(:host_tag) do
          native_call { client.log("INFO", "thrown", { obj: InterruptingValues::Thrower.new }) }
          ran_on = true
        end
        expect(caught).to eq(:thrown)
        expect(ran_on).to be(false)
        expect_client_works_on(client)
      end

      it "lets Thread#kill end a thread blocked in a value's to_s" do
        client = new_client
        entered = Queue.new
        gate = Queue.new
        ran_on = false
        thread = interrupted_thread(entered, lambda {
          client.log("INFO", "killed", { obj: InterruptingValues::Blocking.new(entered, gate) })
          ran_on = true
        }, &:kill)
        expect(thread).not_to be_alive
        expect(thread.value).to be_nil # a killed thread has no value and raised nothing
        expect(ran_on).to be(false)
        expect_client_works_on(client)
      end

      it "lets a rack-timeout-style Thread#raise (not a StandardError) interrupt a value's to_s" do
        client = new_client
        entered = Queue.new
        thread = interrupted_thread(entered, lambda {
          client.log("INFO", "raised", { obj: InterruptingValues::Blocking.new(entered, Queue.new) })
        }) { |t| t.raise(InterruptingValues::RequestTimeout, "request ran too long") }
        expect { thread.value }.to raise_error(InterruptingValues::RequestTimeout, "request ran too long")
        expect_client_works_on(client)
      end

      it "lets a rack-timeout-style Thread#raise (not a StandardError) interrupt the metadata_filter" do
        entered = Queue.new
        client = new_client(metadata_filter: lambda { |metadata|
          if metadata[:stuck]
            entered << true
            sleep 60
          end
          metadata
        })
        thread = interrupted_thread(entered, -> { client.log("INFO", "filtered", { stuck: true }) }) do |t|
          t.raise(InterruptingValues::RequestTimeout, "request ran too long")
        end
        expect { thread.value }.to raise_error(InterruptingValues::RequestTimeout, "request ran too long")
        expect_client_works_on(client)
      end

      it "lets a timeout of the RuntimeError kind (rack-timeout's RequestTimeoutError) out of the metadata_filter" do
        client = new_client(metadata_filter: lambda { |metadata|
          raise InterruptingValues::RequestTimeoutError, "too long" if metadata[:stuck]

          metadata
        })
        expect { native_call { client.log("INFO", "filtered", { stuck: true }) } }
          .to raise_error(InterruptingValues::RequestTimeoutError, "too long")
        expect_client_works_on(client)
      end

      it "lets Timeout.timeout interrupt a slow metadata_filter inside it, and the block ends there" do
        filtered = []
        client = new_client(metadata_filter: lambda { |metadata|
          filtered << :began
          sleep 60 if metadata[:stuck]
          filtered << :finished
          metadata
        })
        ran_on = false
        expect do
          Timeout.timeout(host_timeout) do
            native_call { client.log("INFO", "filtered", { stuck: true }) }
            ran_on = true
          end
        end.to raise_error(Timeout::Error)
        expect([filtered, ran_on]).to eq([[:began], false])
        expect_client_works_on(client)
      end

      it "still turns a value's own StandardError into a placeholder" do
        client = new_client
        broken = Class.new { def to_s = raise(KeyError, "broken") }.new
        expect(native_call { client.log("INFO", "placeholder", { obj: broken }) }).to be(true)
        expect(delivered(client, 1)).to eq([["placeholder", { "obj" => "#<#{broken.class}>" }]])
      end
    end
  end

  # exit and Ctrl-C end the process: proved in a child, whose at_exit handler logs
  # once more (after the interrupted call) and prints what was recorded or delivered.
  describe "in a child process" do
    def child_script(mode, url, body)
      configure =
        if mode == :test_mode
          "c.test_mode = true"
        else
          "c.api_url = #{url.inspect}; c.api_key = 'test-key'; c.batch_interval = 0.05"
        end
      <<~RUBY
        require "log_ingestion"
        $stdout.sync = true
        LogIngestionClient.configure { |c| c.service = "interrupts"; #{configure} }
        at_exit do
          LogIngestionClient.info("after the interrupt")
          if #{(mode == :test_mode).inspect}
            puts "recorded: " + LogIngestionClient.recorded_entries.map { |e| e[:message] }.join(",")
          end
        end
        #{body}
      RUBY
    end

    %i[test_mode engine].each do |mode|
      it "lets exit in a value's to_s end the process with its status (#{mode})" do
        body = <<~RUBY
          exiter = Object.new
          def exiter.to_s = exit(3)
          LogIngestionClient.info("exiting", obj: exiter)
          puts "ran on"
        RUBY
        out, err, status = run_ruby(child_script(mode, server.url, body))
        expect(status.exitstatus).to eq(3), err
        expect(out).not_to include("ran on")
        if mode == :test_mode
          expect(out).to include("recorded: after the interrupt\n")
        else
          expect(server.messages).to eq(["after the interrupt"])
        end
      end

      it "lets Ctrl-C (SIGINT) during a value's to_s raise Interrupt in the host (#{mode})" do
        body = <<~RUBY
          interrupted = Object.new
          def interrupted.to_s
            Process.kill("INT", Process.pid)
            sleep 10
            "never"
          end
          begin
            LogIngestionClient.info("interrupted", obj: interrupted)
            puts "ran on"
          rescue Interrupt
            puts "Interrupt reached the host"
          end
        RUBY
        out, err, status = run_ruby(child_script(mode, server.url, body), timeout: 8)
        expect(status.exitstatus).to eq(0), err
        expect(out).to include("Interrupt reached the host")
        expect(out).not_to include("ran on")
        if mode == :test_mode
          expect(out).to include("recorded: after the interrupt\n")
        else
          expect(server.messages).to eq(["after the interrupt"])
        end
      end
    end
  end
end
