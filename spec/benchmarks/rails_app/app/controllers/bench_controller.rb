# frozen_string_literal: true

# The actions `rake bench:rails` measures: one that does nothing, and two that log
# five lines -- through the gem's client when the variant loads the gem, else through
# Rails.logger (what an app without the gem would write), and through Rails.logger in
# every variant.
class BenchController < ActionController::Base
  ORDER = { id: 4321, user_id: 42, total_cents: 12_999, currency: "EUR" }.freeze

  def trivial
    render plain: "ok"
  end

  def five_info
    if defined?(::LogIngestionClient)
      5.times { |step| LogIngestionClient.info("Order checked", ORDER.merge(step: step)) }
    else
      5.times { |step| Rails.logger.info("Order checked order_id=#{ORDER[:id]} user_id=#{ORDER[:user_id]} step=#{step}") }
    end
    render plain: "ok"
  end

  def five_logger
    5.times { |step| Rails.logger.info("Order checked order_id=#{ORDER[:id]} user_id=#{ORDER[:user_id]} step=#{step}") }
    render plain: "ok"
  end
end
