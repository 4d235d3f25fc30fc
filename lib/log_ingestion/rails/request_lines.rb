# frozen_string_literal: true

require "active_support/log_subscriber"
require "log_ingestion/rails/logger"

module LogIngestion
  # What a request leaves in the Rails log (log/production.log) while the request
  # entries are sent: one line, instead of Rails' own Started / Processing by /
  # Parameters / Rendered / Completed lines.
  #
  #   GET /orders 200 12.34ms controller=OrdersController#index request_id=3f2c...
  #
  #   LogIngestion::RequestLines.replace   # the Railtie does (config.log_ingestion.rails_request_lines)
  #   LogIngestion::RequestLines.keep      # Rails' own lines back
  #
  # It uses only what Rails offers for this: ActionController::LogSubscriber and
  # ActionView::LogSubscriber detached from their notifications (attached again by
  # +keep+), and RackLogger in place of Rails::Rack::Logger in the middleware stack
  # (swapped by the Railtie), which is Rails::Rack::Logger without its Started line.
  #
  # Owns: those subscribers' attachment, the Started line and the one line. Never
  # writes below the Rails logger's level (the line is built only when INFO is
  # written), never forwards its line to the service (the request entry says it).
  module RequestLines
    # Rails' request line writers: the subscriber class and the namespace it listens to.
    RAILS_SUBSCRIBERS = {
      "ActionController::LogSubscriber" => :action_controller,
      "ActionView::LogSubscriber" => :action_view
    }.freeze
    SETTINGS = %i[replace keep].freeze

    @replacing = false
    @detached = []

    # Rails::Rack::Logger (same tags, same `request.action_dispatch` instrumentation,
    # same flush), without the `Started GET "/path" for ip at time` line while
    # RequestLines replaces Rails' lines.
    class RackLogger < ::Rails::Rack::Logger
      private

      def call_app(request, env)
        return super unless RequestLines.replacing?

        instrumenter = ActiveSupport::Notifications.instrumenter
        instrumenter.start "request.action_dispatch", request: request
        status, headers, body = @app.call(env)
        body = ::Rack::BodyProxy.new(body) { finish(request) }
        [status, headers, body]
      rescue Exception # rubocop:disable Lint/RescueException -- as Rails::Rack::Logger: finish, then re-raise
        finish(request)
        raise
      ensure
        ActiveSupport::LogSubscriber.flush_all!
      end
    end

    class << self
      # The setting's value as a Symbol (nil: :replace); raises ConfigurationError otherwise.
      def setting(value)
        return :replace if value.nil?

        setting = value.respond_to?(:to_sym) ? value.to_sym : value
        return setting if SETTINGS.include?(setting)

        raise ConfigurationError,
              "config.log_ingestion.rails_request_lines must be :replace or :keep, not #{value.inspect}"
      end

      # True while Rails' request lines are replaced by the one line.
      def replacing?
        @replacing
      end

      # Detaches Rails' request line subscribers (once) and writes the one line from now on.
      def replace
        # Loading a subscriber attaches it: load them now, so that none attaches after this.
        require "action_controller/log_subscriber" if defined?(::ActionController)
        require "action_view/log_subscriber" if defined?(::ActionView)
        RAILS_SUBSCRIBERS.each do |name, namespace|
          subscriber = attached(name) or next
          subscriber.class.detach_from(namespace)
          @detached << [subscriber.class, namespace]
        end
        @replacing = true
      end

      # Attaches again what +replace+ detached: Rails' own lines, and no one line.
      def keep
        @replacing = false
        @detached.each { |klass, namespace| klass.attach_to(namespace) unless attached(klass.name) }
        @detached = []
        true
      end

      # Writes the request's line to the Rails log when it writes INFO.
      def write(method, path, status, duration, controller, action, request_id, exception)
        return unless @replacing

        logger = ::Rails.logger
        return unless logger&.info?

        line = if controller && request_id && !exception # the usual request: one string built
                 "#{method} #{path} #{status} #{duration}ms controller=#{controller}##{action} request_id=#{request_id}"
               else
                 other_line(method, path, status, duration, controller, action, request_id, exception)
               end
        Logger.without_forwarding { logger.info(line) }
      end

      private

      def other_line(method, path, status, duration, controller, action, request_id, exception)
        line = +"#{method} #{path} #{status} #{duration}ms"
        line << " controller=#{controller}##{action}" if controller
        line << " error=#{exception.class.name}" if exception
        line << " request_id=#{request_id}" if request_id
        line
      end

      # The attached ActiveSupport::LogSubscriber of class +name+, nil when none is.
      def attached(name)
        ActiveSupport::LogSubscriber.log_subscribers.find { |subscriber| subscriber.class.name == name }
      end
    end
  end
end
