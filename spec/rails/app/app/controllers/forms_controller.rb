# frozen_string_literal: true

# Protected against CSRF: a POST without a token is Rails' 422 InvalidAuthenticityToken.
class FormsController < ApplicationController
  protect_from_forgery with: :exception

  def create
    head :ok
  end
end
