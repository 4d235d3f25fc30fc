//! Server-Sent Events as the live tail sends them, read chunk by chunk from a real
//! streaming response.

use std::time::Duration;

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Reads Server-Sent Events from a streaming response, chunk by chunk.
pub struct SseReader {
    response: reqwest::Response,
    /// Bytes received and not yet parsed (an event may span chunks, and a chunk may
    /// end inside a multi-byte character).
    buffer: Vec<u8>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        SseReader {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event (comments and keep-alives skipped), `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                let bytes: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&bytes);
                let mut event = SseEvent {
                    event: "message".to_owned(),
                    id: None,
                    data: String::new(),
                };
                let mut has_field = false;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_owned();
                        has_field = true;
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_owned());
                        has_field = true;
                    } else if let Some(value) = line.strip_prefix("data:") {
                        if !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event
                            .data
                            .push_str(value.strip_prefix(' ').unwrap_or(value));
                        has_field = true;
                    }
                }
                if has_field {
                    return Some(event);
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                _ => return None,
            }
        }
    }

    /// The next event named `name`, skipping others, within `timeout`.
    pub async fn next_named(&mut self, name: &str, timeout: Duration) -> Option<SseEvent> {
        tokio::time::timeout(timeout, async {
            while let Some(event) = self.next().await {
                if event.event == name {
                    return Some(event);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }
}
