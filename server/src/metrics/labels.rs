//! The label sets of the server's metric families: fixed names chosen by the server,
//! never request content.

use prometheus_client::encoding::EncodeLabelSet;

/// Why something was refused or closed: a fixed name chosen by the server, never input.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Reason {
    pub(super) reason: &'static str,
}

/// The protocol entries arrived by: `json` (the JSON API) or `otlp` (OTLP/HTTP).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Protocol {
    pub(super) protocol: &'static str,
}

/// A request's method and matched route (a route pattern, never the raw path).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Route {
    pub(super) method: String,
    pub(super) route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct Instance {
    pub(super) instance: String,
}
