# frozen_string_literal: true

class ApplicationController < ActionController::Base
  include Loggable if LogIngestionTestApp::GUIDE_DIR
end
