# frozen_string_literal: true

class WidgetsController < ApplicationController
  class Boom < StandardError; end

  def index
    Rails.logger.info("listing widgets")
    render json: { widgets: Widget.pluck(:name) }
  end

  def create
    widget = Widget.create!(name: params[:name], password: params[:password])
    render json: { id: widget.id }, status: :created
  end

  def boom
    raise Boom, "widget exploded"
  end

  # Runs a query that really takes params[:ms] milliseconds (sqlite function that sleeps).
  def slow
    Widget.slow_query(Integer(params.fetch(:ms, 150)))
    head :ok
  end

  # Takes 300 ms and says which process served it (the Puma specs spread these over workers).
  def served
    sleep 0.3
    LogIngestionClient.info("Served", { pid: Process.pid })
    head :ok
  end

  def pid
    render json: { pid: Process.pid }
  end

  # The issue-14 request: the app's own entry, and a job that logs from perform.
  def greet
    LogIngestionClient.info("User greeted", { user_id: 99 })
    ExportJob.perform_later(99)
    head :ok
  end

  # A DEBUG line, and a line with trailing line ends.
  def chatty
    Rails.logger.debug("debug detail")
    Rails.logger.info("trailing line ends\n\r\n")
    head :ok
  end

  # A line the app warns about (forwarded at the default logger_level).
  def warning
    Rails.logger.warn("stock low")
    head :ok
  end

  # ActiveRecord::RecordNotFound: Rails answers 404.
  def missing
    Widget.find(-1)
  end

  def tagged
    Rails.logger.tagged("tenant-42") { Rails.logger.warn("tagged warning") }
    head :ok
  end
end
