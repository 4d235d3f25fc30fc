# frozen_string_literal: true

class Widget < ApplicationRecord
  # A query that takes +ms+ milliseconds inside sqlite: a custom SQL function that sleeps.
  def self.slow_query(ms)
    raw = connection.raw_connection
    raw.create_function("sleep_ms", 1) do |func, duration|
      sleep(duration / 1000.0)
      func.result = duration
    end
    connection.select_value("SELECT sleep_ms(#{Integer(ms)})")
  end
end
