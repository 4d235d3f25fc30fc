//! The edge between Ruby and Rust: Rust panics and engine errors become Ruby exceptions.
//!
//! Owns the mapping to `LogIngestion::Error` (panics, engine failures) and
//! `LogIngestion::ConfigurationError` (bad settings). magnus would turn a panic into
//! `fatal`, which ends the process; every method of the binding runs inside `guard`
//! so a panic raises a rescuable `LogIngestion::Error` instead.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};

/// Runs a binding method body, turning a panic into `LogIngestion::Error`.
pub fn guard<T>(body: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(panic) => Err(panic_error(panic)),
    }
}

/// `LogIngestion::Error` carrying a panic's message.
pub fn panic_error(panic: Box<dyn Any + Send>) -> Error {
    let detail = if let Some(message) = panic.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "unknown panic".to_owned()
    };
    gem_error(format!(
        "log_ingestion: internal error (Rust panic: {detail})"
    ))
}

/// `LogIngestion::Error` with `message`.
pub fn gem_error(message: impl Into<String>) -> Error {
    error_of_class("Error", message.into())
}

/// `LogIngestion::ConfigurationError` with `message`.
pub fn configuration_error(message: impl Into<String>) -> Error {
    error_of_class("ConfigurationError", message.into())
}

fn error_of_class(name: &str, message: String) -> Error {
    // SAFETY: every caller runs on a Ruby thread holding the GVL (method bodies, and
    // `without_gvl` after it has taken the GVL back).
    let ruby = unsafe { Ruby::get_unchecked() };
    let class = ruby
        .class_object()
        .const_get::<_, RModule>("LogIngestion")
        .and_then(|module| module.const_get::<_, ExceptionClass>(name));
    match class {
        Ok(class) => Error::new(class, message),
        Err(_) => Error::new(ruby.exception_runtime_error(), message),
    }
}

/// `ArgumentError` with `message`.
pub fn argument_error(ruby: &Ruby, message: impl Into<String>) -> Error {
    Error::new(ruby.exception_arg_error(), message.into())
}
