//! The storage mode an operator asks for (`LOG_INGESTION_STORAGE`, `migrate --storage`),
//! as a value: how it is read and written. Which mode a database ends up in is
//! `timescale`'s decision; this module never touches a database.

use std::fmt;
use std::str::FromStr;

/// The storage mode asked for (`LOG_INGESTION_STORAGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageSetting {
    /// TimescaleDB when it is installed and preloaded, else plain PostgreSQL with one
    /// warning saying why.
    #[default]
    Auto,
    /// TimescaleDB or refuse to start.
    Timescale,
    /// Plain PostgreSQL; never creates the extension.
    Postgres,
}

impl StorageSetting {
    pub const CHOICES: &'static str = "auto, timescaledb or postgresql";
}

impl FromStr for StorageSetting {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(StorageSetting::Auto),
            "timescaledb" => Ok(StorageSetting::Timescale),
            "postgresql" | "postgres" => Ok(StorageSetting::Postgres),
            _ => Err(()),
        }
    }
}

impl fmt::Display for StorageSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageSetting::Auto => "auto",
            StorageSetting::Timescale => "timescaledb",
            StorageSetting::Postgres => "postgresql",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_in_any_case_and_name_the_choices() {
        assert_eq!("auto".parse(), Ok(StorageSetting::Auto));
        assert_eq!("TimescaleDB".parse(), Ok(StorageSetting::Timescale));
        assert_eq!(" postgresql ".parse(), Ok(StorageSetting::Postgres));
        assert_eq!("timescale".parse::<StorageSetting>(), Err(()));
        assert_eq!(StorageSetting::default(), StorageSetting::Auto);
        assert_eq!(StorageSetting::Timescale.to_string(), "timescaledb");
    }
}
