# frozen_string_literal: true

Rails.application.routes.draw do
  get "/widgets" => "widgets#index"
  post "/widgets" => "widgets#create"
  get "/widgets/boom" => "widgets#boom"
  get "/widgets/slow" => "widgets#slow"
  get "/widgets/pid" => "widgets#pid"
  get "/widgets/served" => "widgets#served"
  get "/widgets/tagged" => "widgets#tagged"
  get "/widgets/greet" => "widgets#greet"
  get "/widgets/chatty" => "widgets#chatty"
  post "/forms" => "forms#create"
  post "/jobs/:kind" => "jobs#create"
  get "/assets/app.css" => "widgets#index"
  get "/concern" => "concern#show"
  get "/concern/boom" => "concern#boom"
  get "/widgets/warning" => "widgets#warning"
  get "/widgets/missing" => "widgets#missing"
  mount LogIngestion::StatsEndpoint.new => "/log_ingestion/stats"
end
