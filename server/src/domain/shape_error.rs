//! How serde's refusal of an entry's or its metadata's shape is told to the client: the
//! field it names kept, its position cut, and a lone surrogate explained. It never
//! decides what is valid.

use crate::ingest::client_text::describe_json_error;

/// The client's text for `error`, a shape refusal of one entry.
pub(crate) fn describe_shape_error(error: &serde_json::Error) -> String {
    // serde's messages already name the field ("missing field `service`", "invalid
    // type: integer `5`, expected a string"); only the position is cut, because it
    // counts within the one entry and would mislead next to a batch index.
    // Internal type names become what a client knows ("a log entry object").
    let head = describe_json_error(error);
    if head.contains("escape") || head.contains("surrogate") {
        // serde_json refuses lone UTF-16 surrogates, which no UTF-8 store can hold.
        format!("invalid \\u escape ({head}): text must be valid Unicode; lone UTF-16 surrogates cannot be stored")
    } else {
        head
    }
}
