//! The exception details an entry's metadata carries, noted during the one pass that
//! reads the metadata (`metadata`): where in the stored text sit the values the
//! fingerprint rule reads (`errors::fingerprint`): `exception: {class, message,
//! backtrace}`, the flat OTLP keys `exception.type`, `exception.message`,
//! `exception.stacktrace`, and `kind` and `fingerprint`. Noting a value costs a
//! comparison of its key and two numbers; nothing is decoded until the rule asks.
//! Sensitive keys' values are never noted (they are not stored). This module never
//! decides what is an error.

use std::borrow::Cow;
use std::ops::Range;

/// Frames of a backtrace that are noted (array items or lines); the rest are skipped.
pub const MAX_FRAMES: usize = 200;

/// What a value being read is to the rule: set from its key and its container's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Other,
    Exception,
    Class,
    Message,
    Backtrace,
    Frame,
    FlatType,
    FlatMessage,
    FlatStacktrace,
    FlatFrame,
    Kind,
}

impl Role {
    /// The role of `key`'s value in a container of this role; `top` for the metadata's
    /// own object.
    pub(super) fn of_key(self, key: &str, top: bool) -> Role {
        match (self, key) {
            (_, "exception") if top => Role::Exception,
            (_, "exception.type") if top => Role::FlatType,
            (_, "exception.message") if top => Role::FlatMessage,
            (_, "exception.stacktrace") if top => Role::FlatStacktrace,
            (_, "kind") if top => Role::Kind,
            (Role::Exception, "class") => Role::Class,
            (Role::Exception, "message") => Role::Message,
            (Role::Exception, "backtrace") => Role::Backtrace,
            _ => Role::Other,
        }
    }

    /// The role of an item of an array of this role.
    pub(super) fn of_item(self) -> Role {
        match self {
            Role::Backtrace => Role::Frame,
            Role::FlatStacktrace => Role::FlatFrame,
            _ => Role::Other,
        }
    }
}

/// A backtrace's frames: spans of JSON strings, either one per frame or one string of
/// lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct FrameSpans {
    spans: Vec<Range<usize>>,
    lines: bool,
}

impl FrameSpans {
    fn item(&mut self, span: Range<usize>) {
        if self.lines {
            *self = FrameSpans::default();
        }
        if self.spans.len() < MAX_FRAMES {
            self.spans.push(span);
        }
    }

    fn lines(&mut self, span: Range<usize>) {
        self.spans = vec![span];
        self.lines = true;
    }
}

/// Where the rule's values are in a metadata text: spans of JSON strings (quotes
/// included), and the `fingerprint` value's JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorParts {
    class: Option<Range<usize>>,
    message: Option<Range<usize>>,
    frames: FrameSpans,
    flat_type: Option<Range<usize>>,
    flat_message: Option<Range<usize>>,
    flat_frames: FrameSpans,
    kind: Option<Range<usize>>,
    fingerprint: Option<Range<usize>>,
}

impl ErrorParts {
    /// Notes the JSON string at `span` read in `role`.
    pub(super) fn string(&mut self, role: Role, span: Range<usize>) {
        match role {
            Role::Class => self.class = Some(span),
            Role::Message => self.message = Some(span),
            Role::Backtrace => self.frames.lines(span),
            Role::Frame => self.frames.item(span),
            Role::FlatType => self.flat_type = Some(span),
            Role::FlatMessage => self.flat_message = Some(span),
            Role::FlatStacktrace => self.flat_frames.lines(span),
            Role::FlatFrame => self.flat_frames.item(span),
            Role::Kind => self.kind = Some(span),
            Role::Other | Role::Exception => {}
        }
    }

    /// Notes the top-level `fingerprint` value's text at `span`.
    pub(super) fn fingerprint(&mut self, span: Range<usize>) {
        self.fingerprint = Some(span);
    }

    pub(super) fn is_empty(&self) -> bool {
        *self == ErrorParts::default()
    }
}

/// The exception details of one metadata text, decoded on demand.
#[derive(Debug, Clone)]
pub struct ErrorDetails<'m> {
    json: Cow<'m, str>,
    parts: Cow<'m, ErrorParts>,
}

impl<'m> ErrorDetails<'m> {
    pub(super) fn new(json: Cow<'m, str>, parts: Cow<'m, ErrorParts>) -> Self {
        ErrorDetails { json, parts }
    }

    /// No details (metadata without any of the keys).
    pub fn none() -> ErrorDetails<'static> {
        ErrorDetails {
            json: Cow::Borrowed(""),
            parts: Cow::Owned(ErrorParts::default()),
        }
    }

    fn text(&self, span: &Option<Range<usize>>) -> Option<Cow<'_, str>> {
        let text = string(&self.json, span.as_ref()?.clone());
        (!text.trim().is_empty()).then_some(text)
    }

    /// The exception's class (`exception.class`, else `exception.type`), unless blank.
    pub fn class(&self) -> Option<Cow<'_, str>> {
        self.text(&self.parts.class)
            .or_else(|| self.text(&self.parts.flat_type))
    }

    /// The exception's message (`exception.message`, either shape), unless blank.
    pub fn message(&self) -> Option<Cow<'_, str>> {
        self.text(&self.parts.message)
            .or_else(|| self.text(&self.parts.flat_message))
    }

    /// The metadata's `kind`, unless blank.
    pub fn kind(&self) -> Option<Cow<'_, str>> {
        self.text(&self.parts.kind)
    }

    /// The JSON text of the metadata's `fingerprint` value.
    pub fn explicit_fingerprint(&self) -> Option<&str> {
        self.parts
            .fingerprint
            .clone()
            .and_then(|span| self.json.get(span))
    }

    /// Whether the exception has any frame (`exception.backtrace`, else
    /// `exception.stacktrace`).
    fn frame_spans(&self) -> &FrameSpans {
        if self.parts.frames.spans.is_empty() {
            &self.parts.flat_frames
        } else {
            &self.parts.frames
        }
    }

    /// The backtrace's frames, first first, blank ones skipped, at most [`MAX_FRAMES`]
    /// (counted before blanks are skipped); each decoded only when the caller reaches it.
    pub fn frames(&self) -> Box<dyn Iterator<Item = Cow<'_, str>> + '_> {
        let frames = self.frame_spans();
        let json: &str = &self.json;
        if !frames.lines {
            return Box::new(
                frames
                    .spans
                    .iter()
                    .map(move |span| string(json, span.clone()))
                    .filter(|frame| !frame.trim().is_empty()),
            );
        }
        let Some(span) = frames.spans.first() else {
            return Box::new(std::iter::empty());
        };
        match string(json, span.clone()) {
            Cow::Borrowed(lines) => Box::new(
                lines
                    .lines()
                    .take(MAX_FRAMES)
                    .filter(|frame| !frame.trim().is_empty())
                    .map(Cow::Borrowed),
            ),
            Cow::Owned(lines) => {
                let frames: Vec<String> = lines
                    .lines()
                    .take(MAX_FRAMES)
                    .filter(|frame| !frame.trim().is_empty())
                    .map(str::to_owned)
                    .collect();
                Box::new(frames.into_iter().map(Cow::Owned))
            }
        }
    }

    /// Whether there is any exception detail: a class, a message or a frame.
    pub fn any_exception(&self) -> bool {
        self.class().is_some() || self.message().is_some() || self.frames().next().is_some()
    }
}

/// The text of the JSON string at `span` of `json`: borrowed when it holds no escape.
fn string(json: &str, span: Range<usize>) -> Cow<'_, str> {
    let Some(quoted) = json.get(span) else {
        return Cow::Borrowed("");
    };
    let inner = quoted
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or("");
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    serde_json::from_str::<String>(quoted)
        .map(Cow::Owned)
        .unwrap_or(Cow::Borrowed(""))
}
