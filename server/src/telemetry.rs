//! Tracing setup: `RUST_LOG` filters (default `info`), `LOG_INGESTION_LOG_FORMAT=json`
//! switches to JSON lines. Every line names the instance (`instance=ID` first in text,
//! an `"instance"` field in JSON), so a fleet's logs can be told apart. It owns the
//! global subscriber and never logs request headers, so API keys never reach the logs.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::instance::InstanceId;

/// Installs the global subscriber, naming `instance` on every line; a second call is a
/// no-op.
pub fn init(instance: &InstanceId) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let json = std::env::var("LOG_INGESTION_LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let instance = instance.to_string();
    let _ = if json {
        builder
            .event_format(WithInstance {
                inner: format().json(),
                instance,
                json: true,
            })
            .fmt_fields(format::JsonFields::new())
            .try_init()
    } else {
        builder
            .event_format(WithInstance {
                inner: format(),
                instance,
                json: false,
            })
            .try_init()
    };
}

/// An event format that adds the instance id to what `inner` writes.
struct WithInstance<F> {
    inner: F,
    /// Checked by `InstanceId`: needs no escaping in JSON or text.
    instance: String,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithInstance<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !self.json {
            write!(writer, "instance={} ", self.instance)?;
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"instance\":\"{}\",{rest}", self.instance),
            None => writer.write_str(&line),
        }
    }
}
