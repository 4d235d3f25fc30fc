//! The magnus binding of the log_ingestion gem: `LogIngestion::Native::Engine`.
//!
//! Owns the Ruby-facing surface only: converting Ruby values to owned Rust data on the
//! caller's thread (`entry`, `metadata`), waiting without the GVL (`nogvl`), mapping panics and
//! errors to Ruby exceptions (`boundary`), and forwarding to the Ruby-free engine
//! (`log_ingestion_engine`). No delivery logic lives here.

mod boundary;
mod config;
mod entry;
mod metadata;
mod native_constants;
mod native_engine;
mod native_functions;
mod nogvl;
mod process_id;
mod ruby_text;

use magnus::{function, method, prelude::*, Error, Ruby};

use native_engine::NativeEngine;

#[magnus::init]
fn init(ruby: &Ruby) -> Result<(), Error> {
    process_id::install();
    let module = ruby.define_module("LogIngestion")?;
    module.define_error("Error", ruby.exception_standard_error())?;
    module.define_error("ConfigurationError", ruby.exception_arg_error())?;
    let native = module.define_module("Native")?;
    native_constants::define(ruby, native)?;
    native.define_singleton_method(
        "encode_metadata",
        function!(native_functions::encode_metadata, 1),
    )?;
    native.define_singleton_method("entry_json", function!(native_functions::entry_json, 2))?;
    native.define_singleton_method("idle_stats", function!(native_functions::idle_stats, 0))?;
    native.define_singleton_method("process_id", function!(process_id::current, 0))?;
    #[cfg(feature = "test-hooks")]
    native.define_singleton_method(
        "panic_for_testing",
        function!(native_functions::panic_for_testing, 1),
    )?;
    let class = native.define_class("Engine", ruby.class_object())?;
    class.define_singleton_method("new", function!(NativeEngine::new, 1))?;
    class.define_method("enqueue", method!(NativeEngine::enqueue, 3))?;
    class.define_method("flush", method!(NativeEngine::flush, 1))?;
    class.define_method("send_log", method!(NativeEngine::send_log, 2))?;
    class.define_method("send_once", method!(NativeEngine::send_once, 2))?;
    class.define_method("shutdown", method!(NativeEngine::shutdown, 1))?;
    class.define_method("stats", method!(NativeEngine::stats, 0))?;
    class.define_method("next_error", method!(NativeEngine::next_error, 1))?;
    class.define_method("pid", method!(NativeEngine::pid, 0))?;
    Ok(())
}
