# frozen_string_literal: true

require_relative "support/rails_app"

# The correlation and noise rules, in this process (test mode records what
# would be sent): one request's entries -- Rails' own lines, the app's
# LogIngestionClient calls and the job it enqueues -- share its request id.
RSpec.describe "Request and job context" do
  def metadata_of(message)
    entry_with(message)[:metadata]
  end

  describe "in a request" do
    let(:request_id) { "req-#{SecureRandom.hex(6)}" }

    before { get "/widgets/greet", {}, "HTTP_X_REQUEST_ID" => request_id }

    it "gives the app's own LogIngestionClient entry the request id, beside its own metadata" do
      expect(metadata_of("User greeted")).to eq("user_id" => 99, "request_id" => request_id)
    end

    it "gives the job's entry its job id and class and the request's id as parent_request_id" do
      job = metadata_of("ExportJob performed")
      expect(job["job_id"]).to match(/\A\h{8}-/)
      expect(job.values_at("parent_request_id", "job_class")).to eq([request_id, "ExportJob"])
      expect(job).not_to include("request_id")
    end

    it "leaves no entry of the request without its id" do
      unlinked = entries.reject do |entry|
        [entry[:metadata]["request_id"], entry[:metadata]["parent_request_id"]].include?(request_id)
      end
      expect(unlinked).to eq([])
    end

    it "forwards no DEBUG line at the default level" do
      get "/widgets/chatty"
      expect(entries.map { |e| e[:level] }).not_to include("DEBUG")
      expect(entries.map { |e| e[:message] }).not_to include("debug detail")
    end
  end

  it "carries a job's parents through its serialized payload" do
    job = LogIngestion::Context.with(request_id: "req-payload") do
      ExportJob.new(5).tap { |j| j.run_callbacks(:enqueue) {} }
    end
    payload = JSON.parse(JSON.generate(job.serialize))
    expect(payload["log_ingestion"]).to eq("parent_request_id" => "req-payload")

    child = LogIngestion::Context.with(job_id: payload["job_id"], job_class: "ExportJob",
                                       parent_request_id: "req-payload") do
      ExportJob.new(6).tap { |j| j.run_callbacks(:enqueue) {} }
    end
    expect(child.serialize["log_ingestion"]).to eq("parent_request_id" => "req-payload",
                                                   "parent_job_id" => payload["job_id"])

    restored = ActiveJob::Base.deserialize(payload)
    expect(restored.log_ingestion_context_fields).to include(parent_request_id: "req-payload", job_class: "ExportJob")
  end

  it "gives Rails' own lines the request id when they are forwarded (logger_level :info, rails_request_lines :keep)" do
    RailsAppHelpers.forwarder.forward_level = :info
    LogIngestion::RequestLines.keep
    get "/widgets", {}, "HTTP_X_REQUEST_ID" => "req-started"

    started = entries.find { |entry| entry[:message].start_with?("Started GET \"/widgets\"") }
    expect(started).not_to be_nil, entries.map { |e| e[:message] }.inspect
    expect(started[:metadata]["request_id"]).to eq("req-started")
  ensure
    LogIngestion::RequestLines.replace
  end

  it "gives a job run with perform_now inside a request that request as its parent" do
    RailsAppHelpers.forwarder.forward_level = :info
    LogIngestion::Context.with(request_id: "req-now") { ExportJob.perform_now(8) }
    expect(metadata_of("ExportJob performed")).to include("parent_request_id" => "req-now", "job_class" => "ExportJob")
    expect(metadata_of("exporting user 8")).to include("parent_request_id" => "req-now")
  end

  it "runs a payload without the gem's key (enqueued before the gem) without parent ids" do
    payload = ExportJob.new(5).serialize.except("log_ingestion")
    ActiveJob::Base.execute(payload)
    expect(metadata_of("ExportJob performed")).not_to include("parent_request_id")
  end

  describe "noise" do
    # Rails answers exceptions with its error pages (and logs them at FATAL) only
    # with show_exceptions, which Rails merges into every request's env.
    around do |example|
      env_config = Rails.application.env_config
      saved = env_config["action_dispatch.show_exceptions"]
      env_config["action_dispatch.show_exceptions"] = true
      example.run
    ensure
      env_config["action_dispatch.show_exceptions"] = saved
    end

    it "right-trims line ends of Rails.logger records" do
      RailsAppHelpers.forwarder.forward_level = :info
      get "/widgets/chatty"
      expect(entries.map { |e| e[:message] }).to include("trailing line ends")
    end

    it "sends an exception once, as its exception entry, not again as Rails' FATAL lines" do
      get "/widgets/boom"
      expect(last_response.status).to eq(500)
      expect(entries.select { |e| e[:metadata]["kind"] == "exception" }.map { |e| e[:level] }).to eq(["ERROR"])
      expect(entries.map { |e| e[:level] }).not_to include("FATAL")
    end

    it "sends a routing error (404) at WARN, not FATAL" do
      get "/no/such/route"
      expect(last_response.status).to eq(404)
      routing = entries.select { |e| e[:message].include?("RoutingError") }
      expect(routing.map { |e| e[:level] }.uniq).to eq(["WARN"])
      expect(entries.map { |e| e[:level] }).not_to include("FATAL")
    end

    it "sends an invalid CSRF token (422) as a WARN request and exception entry and no FATAL" do
      ActionController::Base.allow_forgery_protection = true
      post "/forms"
      expect(last_response.status).to eq(422)
      expect(entries.select { |e| e[:metadata]["kind"] }.map { |e| [e[:level], e[:metadata]["kind"]] })
        .to eq([%w[WARN request], %w[WARN exception]])
      expect(entries.map { |e| e[:level] }).not_to include("FATAL")
    ensure
      ActionController::Base.allow_forgery_protection = false
    end
  end
end
