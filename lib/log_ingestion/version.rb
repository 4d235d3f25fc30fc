# frozen_string_literal: true

module LogIngestion
  # The gem's version; the native crate's version follows it.
  VERSION = "0.1.0"
end
