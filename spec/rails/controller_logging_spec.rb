# frozen_string_literal: true

require_relative "support/rails_app"

RSpec.describe LogIngestion::ControllerLogging do
  it "logs the action's request with filtered params and its response, with Rails' request id" do
    get "/concern", { "q" => "gears", "password" => "hunter2" }, "HTTP_X_REQUEST_ID" => "concern-req-1"

    concern_entries = entries.select { |e| e[:metadata]["controller"] == "ConcernController" && e[:message].start_with?("HTTP") }
    request, response = concern_entries
    expect(request[:metadata]).to include("request_id" => "concern-req-1", "action" => "show",
                                          "params" => { "q" => "gears", "password" => "[FILTERED]" })
    expect(response[:metadata]).to include("request_id" => "concern-req-1", "status" => 200)
  end

  it "logs a failing action as Request failed and lets the exception propagate" do
    expect { get "/concern/boom" }.to raise_error(ArgumentError, "concern boom")

    failed = entry_with("Request failed")
    expect(failed[:metadata]["exception"]).to include("class" => "ArgumentError", "message" => "concern boom")
  end

  it "works alone: without the middleware, RequestId or the request entries it logs request and response" do
    LogIngestion::RequestEntries.unsubscribe
    status, = ConcernController.action(:show).call(Rack::MockRequest.env_for("/concern?q=gears"))

    expect(status).to eq(200)
    gem_entries = entries.reject { |e| e[:metadata]["logger"] == "rails" } # Rails.logger's own lines, broadcast
    expect(gem_entries.map { |e| e[:message] }).to eq(["HTTP Request", "HTTP Response"])
    ids = gem_entries.map { |e| e[:metadata]["request_id"] }.uniq
    expect(ids.size).to eq(1)
    expect(ids.first).to match(/\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/)
  end

  it "answers 200 and logs request.ip and a spoofing note when Client-IP and X-Forwarded-For differ" do
    level = Rails.logger.level
    Rails.logger.level = :warn # Rails' own request line reads remote_ip at debug/info (see request_logging_spec)
    get "/concern", {}, "HTTP_CLIENT_IP" => "1.1.1.1", "HTTP_X_FORWARDED_FOR" => "2.2.2.2", "REMOTE_ADDR" => "203.0.113.9"
    Rails.logger.level = level

    expect(last_response.status).to eq(200)
    request = entries.find { |e| e[:metadata]["controller"] == "ConcernController" && e[:message] == "HTTP Request" }
    expect(request[:metadata]).to include("ip" => "203.0.113.9", "ip_spoofing" => a_string_including("1.1.1.1"))
  end
end
