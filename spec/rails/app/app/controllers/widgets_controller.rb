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

  def pid
    render json: { pid: Process.pid }
  end

  def tagged
    Rails.logger.tagged("tenant-42") { Rails.logger.warn("tagged warning") }
    head :ok
  end
end
