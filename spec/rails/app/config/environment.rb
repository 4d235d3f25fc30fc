# frozen_string_literal: true

ENV["RAILS_ENV"] ||= "test"
require_relative "application"

# This app's own database is sqlite; a DATABASE_URL meant for the ingestion server's
# PostgreSQL must not reach ActiveRecord, which reads it when ActiveRecord::Base loads.
database_url = ENV.delete("DATABASE_URL")
begin
  Rails.application.initialize!
  ActiveRecord::Base.connection_pool # loads ActiveRecord::Base: its database config is resolved now
ensure
  ENV["DATABASE_URL"] = database_url if database_url
end

ActiveRecord::Schema.verbose = false
ActiveRecord::Schema.define do
  create_table :widgets, force: true do |t|
    t.string :name
    t.string :password
  end
end
