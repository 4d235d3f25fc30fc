//! `GET /api/v1/logs/export?…&format=ndjson|csv`: every entry matching the filters of
//! `/api/v1/logs` (not one page), newest first, as a download. Owns the two export
//! formats and the stream. Pages are read through `search::newest_first` with its
//! keyset cursor, one page per step, and the next page is asked of the database only
//! when the client has taken the previous one: memory stays at one page whatever the
//! export's size, and a client that disconnects stops the reading. Each page takes a
//! read connection (and the read side's statement timeout) like any other read and
//! gives it back; an export ends at a row cap, at most a few run at once, and a shutdown
//! cuts them (the client sees a truncated transfer, never a short file that looks whole).
//! The pages are read by a task of their own that hands each chunk to the response
//! through a one-chunk channel: a client that stops reading without leaving gives its
//! slot back once it has taken nothing for the export's stall time, and its transfer
//! ends truncated.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::cursor::Cursor;
use super::error::ReadError;
use super::filters::LogFilter;
use super::rows::LogRow;
use super::search::newest_first;
use super::{params_from, QueryPairs, ReadContext};

/// The most rows one export returns; `limit` may ask for fewer.
pub const MAX_ROWS: i64 = 1_000_000;
/// Exports one instance runs at once; more are refused with a 503.
pub const MAX_STREAMS: usize = 2;
/// How long an export waits for its client to take the next chunk before it stops and
/// gives its slot back (`ReadContext::with_export_stall` changes it).
pub const STALL: Duration = Duration::from_secs(30);
/// Rows read per statement (and sent per chunk).
const PAGE: i64 = 1_000;
/// The CSV columns, in order.
const CSV_HEADER: &str = "id,timestamp,received_at,service,level,message,fingerprint,metadata\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Ndjson,
    Csv,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

/// Where an export is: what it reads next and how many rows it may still send.
struct Export {
    context: ReadContext,
    filter: LogFilter,
    format: Format,
    now: DateTime<Utc>,
    cursor: Option<Cursor>,
    left: i64,
    header_sent: bool,
    finished: bool,
    /// One of [`MAX_STREAMS`], held until the stream is dropped.
    _slot: OwnedSemaphorePermit,
}

pub async fn export(
    State(context): State<ReadContext>,
    query: QueryPairs,
) -> Result<Response, ReadError> {
    let mut params = params_from(query)?;
    let now = Utc::now();
    let filter = context.filter(&mut params, now);
    let format = match params.one("format").as_deref() {
        None | Some("ndjson") => Format::Ndjson,
        Some("csv") => Format::Csv,
        Some(other) => {
            params.problem(format!(
                "format: ndjson or csv (got {:?})",
                crate::ingest::client_text::truncated(other, 40)
            ));
            Format::Ndjson
        }
    };
    let limit = params.number("limit", 1, MAX_ROWS).unwrap_or(MAX_ROWS);
    params.finish().map_err(ReadError::InvalidQuery)?;
    let slot = Arc::clone(&context.export_slots)
        .try_acquire_owned()
        .map_err(|_| ReadError::TooManyExports)?;

    let export = Export {
        context,
        filter,
        format,
        now,
        cursor: None,
        left: limit,
        header_sent: false,
        finished: false,
        _slot: slot,
    };
    let stall = export.context.export_stall();
    let (chunks, receiver) = mpsc::channel(1);
    let finished = Arc::new(AtomicBool::new(false));
    tokio::spawn(produce(export, chunks, Arc::clone(&finished), stall));
    let stream = futures::stream::unfold(Some(receiver), move |receiver| {
        let finished = Arc::clone(&finished);
        async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Some(chunk) => Some((chunk, Some(receiver))),
                None if finished.load(Ordering::Acquire) => None,
                None => Some((
                    Err(std::io::Error::other("the export stopped before its end")),
                    None,
                )),
            }
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let filename = format!(
        "attachment; filename=\"logs-{}.{}\"",
        now.format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    if let Ok(value) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-export-row-cap", HeaderValue::from(limit));
    Ok(response)
}

/// Reads the export's chunks and hands them to the response one at a time. Stops when
/// the client leaves (cancelling a page being read), when it has taken nothing for
/// `stall`, or at a failure (sent as the stream's error when there is room for it);
/// `finished` is set only when every chunk was handed over, so that any other end
/// reaches the client as a truncated transfer.
async fn produce(
    mut export: Export,
    chunks: mpsc::Sender<Result<Bytes, std::io::Error>>,
    finished: Arc<AtomicBool>,
    stall: Duration,
) {
    loop {
        let step = tokio::select! {
            step = next_chunk(export) => step,
            () = chunks.closed() => return,
        };
        match step {
            Ok(Some((chunk, next))) => {
                export = next;
                match tokio::time::timeout(stall, chunks.send(Ok(chunk))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        tracing::info!(
                            stall_seconds = stall.as_secs_f64(),
                            "an export stopped: its client took nothing for the stall time"
                        );
                        return;
                    }
                }
            }
            Ok(None) => {
                finished.store(true, Ordering::Release);
                return;
            }
            Err(error) => {
                let _ = chunks.try_send(Err(error));
                return;
            }
        }
    }
}

/// The export's next chunk: the CSV header first, then one page of rows; `None` once
/// every matching row (or the cap) is sent.
async fn next_chunk(mut export: Export) -> Result<Option<(Bytes, Export)>, std::io::Error> {
    if export.format == Format::Csv && !export.header_sent {
        export.header_sent = true;
        return Ok(Some((Bytes::from_static(CSV_HEADER.as_bytes()), export)));
    }
    if export.finished || export.left <= 0 {
        return Ok(None);
    }
    if export.context.is_closing() {
        return Err(std::io::Error::other("the server is shutting down"));
    }
    let wanted = export.left.min(PAGE);
    let rows = read_page(&export, wanted).await.map_err(|error| {
        tracing::warn!(%error, "an export stopped: a page could not be read");
        std::io::Error::other(error.to_string())
    })?;
    export.finished = (rows.len() as i64) < wanted;
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    export.cursor = Some(last.position());
    export.left -= rows.len() as i64;
    let mut chunk = Vec::with_capacity(rows.len() * 256);
    for row in &rows {
        match export.format {
            Format::Ndjson => {
                serde_json::to_writer(&mut chunk, row).map_err(std::io::Error::other)?;
                chunk.push(b'\n');
            }
            Format::Csv => write_csv_row(&mut chunk, row),
        }
    }
    Ok(Some((Bytes::from(chunk), export)))
}

async fn read_page(export: &Export, wanted: i64) -> Result<Vec<LogRow>, ReadError> {
    let mut connection = export.context.reads().acquire().await?;
    newest_first(
        &mut connection,
        export.context.mode,
        &export.filter,
        export.cursor,
        wanted,
        export.now,
    )
    .await
}

/// One CSV record (RFC 4180, CRLF): metadata as its JSON text.
fn write_csv_row(out: &mut Vec<u8>, row: &LogRow) {
    let metadata = row
        .metadata
        .as_ref()
        .map_or_else(|| "{}".to_owned(), |value| value.to_string());
    let fields = [
        row.id.to_string(),
        row.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true),
        row.received_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    ];
    for field in &fields {
        out.extend_from_slice(field.as_bytes());
        out.push(b',');
    }
    let texts = [
        row.service.as_str(),
        row.level.as_str(),
        row.message.as_str(),
        row.fingerprint.as_deref().unwrap_or(""),
        metadata.as_str(),
    ];
    for (index, text) in texts.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_csv_text(out, text);
    }
    out.extend_from_slice(b"\r\n");
}

/// A text field, quoted when it holds a comma, quote or line break (quotes doubled).
/// A field a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, a
/// tab or a carriage return) gets a leading `'`, so opening an export never runs what a
/// client logged.
fn push_csv_text(out: &mut Vec<u8>, text: &str) {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = formula || text.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push(b'"');
    }
    if formula {
        out.push(b'\'');
    }
    for byte in text.bytes() {
        if byte == b'"' {
            out.push(b'"');
        }
        out.push(byte);
    }
    if quoted {
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> String {
        let mut out = Vec::new();
        push_csv_text(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_text_is_quoted_only_when_it_must_be() {
        assert_eq!(csv("plain text"), "plain text");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv(""), "");
    }

    #[test]
    fn csv_text_a_spreadsheet_would_run_is_defused() {
        assert_eq!(csv("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv("-1+2"), "\"'-1+2\"");
        assert_eq!(csv("@cmd"), "\"'@cmd\"");
        assert_eq!(csv("a=b"), "a=b");
    }
}
