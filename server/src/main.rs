//! `log-ingestion-server [serve|migrate|users ...]`: reads configuration, then runs the
//! server (`serve`, the default), applies migrations (`migrate`) or manages people
//! (`users`, `auth::cli`). Nothing else lives here.

use std::process::ExitCode;

use log_ingestion_server::auth::cli::{self as users_cli, UsersCommand};
use log_ingestion_server::config::{DatabaseSettings, Settings};
use log_ingestion_server::instance::InstanceId;
use log_ingestion_server::startup::Application;
use log_ingestion_server::storage::declared_keys::Undeclared;
use log_ingestion_server::storage::{ConvertRows, StorageSetting};
use log_ingestion_server::{storage, telemetry};

const USAGE_HEAD: &str =
    "usage: log-ingestion-server [serve | migrate [--storage auto|timescaledb|postgresql] | users ...]

  serve    run the HTTP service (default). Creates the schema in a database without
           one; never changes an existing one: it refuses to start when migrations are
           missing and warns when its settings differ from the database's
  migrate  apply database migrations, the declared metadata keys and the trigram
           index, and exit; --storage overrides LOG_INGESTION_STORAGE. With timescaledb
           it converts a plain logs table that already holds rows into a hypertable,
           keeping every row (serve and auto never convert one). Waits at most
           LOG_INGESTION_MIGRATE_LOCK_TIMEOUT (5s) for a lock writers hold";
const USAGE_TAIL: &str =
    "Configuration comes from the environment and an optional .env file; see docs/server.md.";

fn usage() -> String {
    format!("{USAGE_HEAD}\n{}\n\n{USAGE_TAIL}", users_cli::USAGE)
}

enum Command {
    Serve,
    Users(UsersCommand),
    /// With the `--storage` override, when given.
    Migrate(Option<StorageSetting>),
}

/// A command with what it needs before the runtime starts (`serve`'s settings size
/// the runtime).
enum Ready {
    Serve(Box<Settings>),
    Migrate(Option<StorageSetting>),
    Users(UsersCommand),
}

/// The command named by the arguments, or the message to print with exit status 2.
fn parse_command(args: &[String]) -> Result<Option<Command>, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["serve"] => Ok(Some(Command::Serve)),
        ["-h" | "--help" | "help", ..] => Ok(None),
        ["migrate"] => Ok(Some(Command::Migrate(None))),
        ["migrate", "--storage", value] => value
            .parse()
            .map(|setting| Some(Command::Migrate(Some(setting))))
            .map_err(|()| format!("--storage must be {}", StorageSetting::CHOICES)),
        ["migrate", rest @ ..] => Err(format!("unexpected arguments to migrate: {rest:?}")),
        ["users", rest @ ..] => users_cli::parse(rest).map(|command| Some(Command::Users(command))),
        ["serve", rest @ ..] => Err(format!("unexpected arguments to serve: {rest:?}")),
        [other, ..] => Err(format!("unknown command {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_command(&args) {
        Ok(Some(command)) => command,
        Ok(None) => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("log-ingestion-server: {message}\n{}", usage());
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
    // `serve` reads its settings before the runtime exists: they size it.
    let ready = match command {
        Command::Serve => match Settings::from_env() {
            Ok(settings) => Ready::Serve(Box::new(settings)),
            Err(error) => {
                eprintln!("log-ingestion-server: {error}");
                return ExitCode::FAILURE;
            }
        },
        Command::Migrate(storage) => Ready::Migrate(storage),
        Command::Users(command) => Ready::Users(command),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Ready::Serve(settings) = &ready {
        builder.worker_threads(settings.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("log-ingestion-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match ready {
        Ready::Serve(settings) => runtime.block_on(serve(*settings)),
        Ready::Migrate(storage) => runtime.block_on(migrate(storage)),
        Ready::Users(command) => runtime.block_on(users(command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("log-ingestion-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let application = Application::build(settings)
        .await
        .map_err(|error| error.to_string())?;
    application
        .run_until(shutdown_signal())
        .await
        .map_err(|error| error.to_string())
}

/// Applies migrations in the storage mode asked for. Unlike `serve`, converts a plain
/// table that holds rows when TimescaleDB is asked for explicitly (never under `auto`:
/// the conversion locks the table while rows move, an operator's decision).
async fn migrate(storage_override: Option<StorageSetting>) -> Result<(), String> {
    let settings = DatabaseSettings::from_env().map_err(|error| error.to_string())?;
    let setting = storage_override.unwrap_or(settings.storage);
    let convert = if setting == StorageSetting::Timescale {
        ConvertRows::Allow
    } else {
        ConvertRows::Refuse
    };
    let pool = storage::migration_pool(&settings).map_err(|error| error.to_string())?;
    let mode = storage::migrate(&pool, setting, convert)
        .await
        .map_err(|error| error.to_string())?;
    storage::declared_keys::apply(&pool, &settings, Undeclared::Drop)
        .await
        .map_err(|error| error.to_string())?;
    storage::retention::declare(&pool, mode, settings.retention_days)
        .await
        .map_err(|error| error.to_string())?;
    tracing::info!(storage = %mode, %setting, "migrations applied");
    Ok(())
}

/// Runs a `users` command against the database of `DATABASE_URL`.
async fn users(command: UsersCommand) -> Result<(), String> {
    let settings = DatabaseSettings::from_env().map_err(|error| error.to_string())?;
    let pool = storage::migration_pool(&settings).map_err(|error| error.to_string())?;
    let output = users_cli::run(command, &pool, &mut std::io::stdin().lock()).await?;
    print!("{output}");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Command>, String> {
        parse_command(&args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn migrate_takes_an_optional_storage_override() {
        assert!(matches!(parse(&[]), Ok(Some(Command::Serve))));
        assert!(matches!(
            parse(&["migrate"]),
            Ok(Some(Command::Migrate(None)))
        ));
        assert!(matches!(
            parse(&["migrate", "--storage", "timescaledb"]),
            Ok(Some(Command::Migrate(Some(StorageSetting::Timescale))))
        ));
        let error = parse(&["migrate", "--storage", "mongodb"])
            .err()
            .unwrap_or_default();
        assert!(error.contains("auto, timescaledb or postgresql"), "{error}");
        assert!(parse(&["migrate", "--force"]).is_err());
        assert!(parse(&["serve", "extra"]).is_err());
    }
}
