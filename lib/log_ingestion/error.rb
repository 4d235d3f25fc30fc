# frozen_string_literal: true

# The gem's exception classes. Delivery failures are never raised to callers of
# `log`; they are counted in `stats` and reported through `on_error`.
module LogIngestion
  # Raised for failures of the client itself: Rust code panicked (the panic is caught
  # at the boundary and raised as this).
  class Error < StandardError; end

  # Raised by `configure` (and the setters) for a setting with a bad value. An
  # ArgumentError, because a bad setting is a bad argument.
  class ConfigurationError < ArgumentError; end

  # Raised when no native extension fits this platform and Ruby (see Native): a
  # LoadError, as for any native gem whose library is missing, with a message that says
  # how to build from source.
  class NativeLoadError < LoadError; end
end
