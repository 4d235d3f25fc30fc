# frozen_string_literal: true

# Uses the gem's controller concern alone.
class ConcernController < ActionController::Base
  include LogIngestion::ControllerLogging

  def show
    render plain: "ok"
  end

  def boom
    raise ArgumentError, "concern boom"
  end
end
