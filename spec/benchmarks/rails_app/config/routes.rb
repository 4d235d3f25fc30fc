# frozen_string_literal: true

Rails.application.routes.draw do
  get "/trivial" => "bench#trivial"
  get "/five_info" => "bench#five_info"
  get "/five_logger" => "bench#five_logger"
end
