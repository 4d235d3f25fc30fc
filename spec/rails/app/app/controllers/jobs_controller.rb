# frozen_string_literal: true

class JobsController < ApplicationController
  def create
    job = params[:kind] == "failing" ? FailingJob : ExportJob
    LogIngestionClient.info("Export requested", { user_id: params[:user_id] })
    job.perform_later(Integer(params.fetch(:user_id, 1)), password: "hunter2")
    head :accepted
  end
end
