# frozen_string_literal: true

require_relative "support/rails_app"

# The old job entries: the JobLogging concern, and the enqueue/perform subscribers
# (config.log_ingestion.subscribers = true).
RSpec.describe "job logging" do
  it "logs an enqueued job and its run (subscribers) with the same job id" do
    LogIngestion::Subscribers.subscribe(only: %i[enqueue perform])
    job = ExportJob.perform_later(7)

    expect(entry_with("Job enqueued")[:metadata]).to include("job_class" => "ExportJob", "job_id" => job.job_id,
                                                             "queue_name" => "exports")
    expect(entry_with("Job performed")[:metadata]).to include("job_class" => "ExportJob", "job_id" => job.job_id)
  end

  it "logs start and completion with filtered arguments (JobLogging)" do
    job = LoggedExportJob.perform_later(7, password: "hunter2")

    started = entry_with("Job started")[:metadata]
    expect(started).to include("job_id" => job.job_id)
    expect(started["arguments"]).to eq([7, { "password" => "[FILTERED]" }])
    expect(entry_with("Job completed")[:metadata]["duration_ms"]).to be_a(Numeric)
  end

  it "logs a failing job as errors with the exception and lets the exception propagate" do
    LogIngestion::Subscribers.subscribe(only: %i[perform])
    expect { LoggedFailingJob.perform_later(9) }.to raise_error(FailingJob::Failure, "job for user 9 failed")

    failures = entries_with("Job failed")
    expect(failures.size).to eq(2) # the JobLogging concern and the perform.active_job subscriber
    expect(failures.map { |e| e[:level] }.uniq).to eq(["ERROR"])
    expect(failures.map { |e| e[:metadata]["exception"]["class"] }.uniq).to eq(["FailingJob::Failure"])
  end

  it "lets a job choose what is logged through job_arguments" do
    job_class = Class.new(ApplicationJob) do
      include LogIngestion::JobLogging

      def self.name
        "ChosenArgumentsJob"
      end

      def perform(user_id, _secret_blob); end

      private

      def job_arguments
        { user_id: arguments.first }
      end
    end
    job_class.perform_now(5, "big secret blob")

    expect(entry_with("Job started")[:metadata]["arguments"]).to eq("user_id" => 5)
    expect(JSON.generate(entry_with("Job started"))).not_to include("big secret blob")
  end

  it "logs no arguments for a job that turns off Rails' argument logging" do
    job_class = Class.new(ApplicationJob) do
      include LogIngestion::JobLogging

      self.log_arguments = false

      def self.name
        "QuietJob"
      end

      def perform(_token); end
    end
    job_class.perform_now("reset-token-abc123")

    expect(entry_with("Job started")[:metadata]).not_to have_key("arguments")
    expect(JSON.generate(entries)).not_to include("reset-token-abc123")
  end

  it "works alone: without the subscribers JobLogging logs start and completion" do
    LoggedExportJob.perform_now(8)

    old_entries = entries.reject { |e| e[:metadata]["kind"] } # the job entry (JobEntries) aside
    expect(old_entries.map { |e| e[:message] }).to eq(["Job started", "Job completed"])
  end
end
