//! `log-ingestion-server [serve|migrate]`: reads configuration, then runs the server
//! (`serve`, the default) or applies migrations (`migrate`). Nothing else lives here.

use std::process::ExitCode;

use log_ingestion_server::config::{DatabaseSettings, Settings};
use log_ingestion_server::instance::InstanceId;
use log_ingestion_server::startup::Application;
use log_ingestion_server::{storage, telemetry};

const USAGE: &str = "usage: log-ingestion-server [serve|migrate]

  serve    run the HTTP service (default); applies migrations first
  migrate  apply database migrations and exit

Configuration comes from the environment and an optional .env file; see README.";

enum Command {
    Serve,
    Migrate,
}

fn main() -> ExitCode {
    let command = match std::env::args().nth(1).as_deref() {
        None | Some("serve") => Command::Serve,
        Some("migrate") => Command::Migrate,
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("log-ingestion-server: unknown command {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            eprintln!("log-ingestion-server: cannot read .env: {error}");
            return ExitCode::from(2);
        }
    }
    // The instance id is needed before the settings are read (their errors are logged
    // too); an invalid one is reported by `Settings::from_env` below.
    let configured_instance = std::env::var("LOG_INGESTION_INSTANCE_ID").ok();
    let instance = InstanceId::resolve(configured_instance.as_deref().map(str::trim))
        .unwrap_or_else(|_| InstanceId::for_this_process());
    telemetry::init(&instance);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("log-ingestion-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Serve => runtime.block_on(serve()),
        Command::Migrate => runtime.block_on(migrate()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("log-ingestion-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), String> {
    let settings = Settings::from_env().map_err(|error| error.to_string())?;
    let application = Application::build(settings)
        .await
        .map_err(|error| error.to_string())?;
    application
        .run_until(shutdown_signal())
        .await
        .map_err(|error| error.to_string())
}

async fn migrate() -> Result<(), String> {
    let settings = DatabaseSettings::from_env().map_err(|error| error.to_string())?;
    let pool = storage::pool(&settings).map_err(|error| error.to_string())?;
    storage::migrate(&pool)
        .await
        .map_err(|error| error.to_string())?;
    let mode = storage::detect_mode(&pool)
        .await
        .map_err(|error| error.to_string())?;
    tracing::info!(storage = %mode, "migrations applied");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
