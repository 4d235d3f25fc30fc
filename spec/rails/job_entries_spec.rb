# frozen_string_literal: true

require_relative "support/rails_app"

RSpec.describe LogIngestion::JobEntries do
  def summary
    entries.map { |e| [e[:level], e[:message]] }
  end

  it "sends one entry per job run, and nothing for the enqueue" do
    job = ExportJob.perform_later(7, password: "hunter2")

    expect(summary).to eq([["INFO", "ExportJob performed"]])
    expect(entries.first[:metadata]).to include(
      "kind" => "job", "job_class" => "ExportJob", "job_id" => job.job_id, "queue" => "exports",
      "arguments" => [7, { "password" => "[FILTERED]" }], "outcome" => "performed", "executions" => 1
    )
    expect(entries.first[:metadata]["duration_ms"]).to be_a(Numeric)
  end

  it "names the request that enqueued the job" do
    LogIngestion::Context.with(request_id: "job-parent-1") { ExportJob.perform_later(8) }

    expect(entries.first[:metadata]).to include("enqueued_by_request_id" => "job-parent-1",
                                                "parent_request_id" => "job-parent-1")
  end

  it "sends a failed run as an ERROR job entry and the exception as its own entry, not Rails' report again" do
    expect { FailingJob.perform_later(9) }.to raise_error(FailingJob::Failure)

    expect(summary).to eq([["ERROR", "FailingJob failed"], ["ERROR", "FailingJob::Failure: job for user 9 failed"]])
    expect(entries.first[:metadata]).to include("outcome" => "failed", "exception_class" => "FailingJob::Failure")
    expect(entries.last[:metadata]).to include("kind" => "exception", "job_class" => "FailingJob")
  end

  it "sends the exception of an inline job that fails its request once" do
    Rails.application.env_config["action_dispatch.show_exceptions"] = true
    post "/jobs/failing", { user_id: 5 }

    expect(last_response.status).to eq(500)
    expect(summary).to eq([["INFO", "Export requested"], ["ERROR", "FailingJob failed"],
                           ["ERROR", "FailingJob::Failure: job for user 5 failed"], ["ERROR", "POST /jobs/failing 500"]])
  ensure
    Rails.application.env_config["action_dispatch.show_exceptions"] = false
  end

  it "sends a run whose exception discard_on handled as discarded (WARN)" do
    job_class = Class.new(ApplicationJob) do
      def self.name = "DiscardedJob"
      discard_on ArgumentError
      def perform = raise(ArgumentError, "bad input")
    end
    job_class.perform_now

    expect(summary).to eq([["WARN", "DiscardedJob discarded"]])
    expect(entries.first[:metadata]).to include("outcome" => "discarded", "exception_class" => "ArgumentError")
  end

  it "sends a run whose exception retry_on enqueued again as retried (WARN)" do
    job_class = Class.new(ApplicationJob) do
      def self.name = "RetriedJob"
      self.queue_adapter = :test # the retry waits in the queue
      retry_on ArgumentError, wait: 1, attempts: 3
      def perform = raise(ArgumentError, "try again")
    end
    job_class.perform_now

    expect(summary).to eq([["WARN", "RetriedJob retried"]])
    expect(entries.first[:metadata]).to include("outcome" => "retried", "exception_class" => "ArgumentError")
  end

  it "sends a run halted by a before_perform callback as aborted" do
    job_class = Class.new(ApplicationJob) do
      def self.name = "HaltedJob"
      before_perform { throw :abort }
      def perform = raise("never performed")
    end
    job_class.perform_now

    expect(entries.select { |e| e[:metadata]["kind"] == "job" }.map { |e| [e[:level], e[:message]] })
      .to eq([["INFO", "HaltedJob aborted"]])
  end

  it "sends no arguments for a job that turns off Rails' argument logging" do
    stub_const("QuietExportJob", Class.new(ExportJob) { self.log_arguments = false })
    QuietExportJob.perform_now(7, "reset-token-abc123")

    expect(entries.first[:metadata]).to include("job_class" => "QuietExportJob", "outcome" => "performed")
    expect(entries.first[:metadata]).not_to have_key("arguments")
    expect(JSON.generate(entries)).not_to include("reset-token-abc123")
  end

  it "sends a record argument as its GlobalID, never its attributes" do
    widget = Widget.create!(name: "gear", password: "hunter2")
    ExportJob.perform_now(widget)

    expect(entries.first[:metadata]["arguments"]).to eq(["gid://log-ingestion-test-app/Widget/#{widget.id}"])
  end
end
