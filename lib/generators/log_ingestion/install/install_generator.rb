# frozen_string_literal: true

require "rails/generators/base"

module LogIngestion
  module Generators
    # `rails generate log_ingestion:install`: writes a commented
    # config/initializers/log_ingestion.rb. Owns that file's template only; never
    # writes credentials or keys into the app.
    class InstallGenerator < ::Rails::Generators::Base
      source_root File.expand_path("templates", __dir__)
      desc "Creates config/initializers/log_ingestion.rb, the settings of the log_ingestion gem."

      def create_initializer
        template "log_ingestion.rb", "config/initializers/log_ingestion.rb"
      end
    end
  end
end
