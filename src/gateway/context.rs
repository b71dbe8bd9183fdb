//! The per-request context: every decision the pipeline makes is recorded here
//! for the later hooks (forwarding, response headers, logging).

use super::cors::CorsState;
use crate::gatekeeper::Principal;
use crate::metering::Plan;
use crate::routing::{NormalPath, Route};
use std::sync::Arc;
use std::time::Instant;

/// What happened to a request, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not decided yet (the request never reached the pipeline's end).
    Pending,
    /// Forwarded without a credential or metering.
    Public,
    /// Admitted and forwarded.
    Admitted,
    /// Answered by a management endpoint.
    Managed,
    /// A CORS preflight: answered by tollgate, or forwarded unmetered to an
    /// origin that handles CORS itself.
    Preflight,
    /// Refused by tollgate.
    Rejected(&'static str),
}

impl Decision {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Pending => "pending",
            Decision::Public => "public",
            Decision::Admitted => "admitted",
            Decision::Managed => "managed",
            Decision::Preflight => "preflight",
            Decision::Rejected(_) => "rejected",
        }
    }
}

/// State carried through the Pingora hooks of one request.
#[derive(Debug)]
pub struct RequestCtx {
    pub started: Instant,
    pub path: Option<NormalPath>,
    /// The target the origin receives (the normalised path and the query),
    /// when it is not the request's own.
    pub upstream_uri: Option<http::Uri>,
    pub route: Option<Arc<Route>>,
    pub principal: Option<Principal>,
    pub plan: Option<Arc<Plan>>,
    pub decision: Decision,
    /// Headers added to the response (rate-limit state).
    pub response_headers: Vec<(String, String)>,
    /// When the request was sent upstream.
    pub upstream_started: Option<Instant>,
    /// Status of a reply tollgate wrote itself (refusals, its own endpoints).
    pub local_reply_status: Option<u16>,
    /// The client's address.
    pub client_ip: Option<std::net::IpAddr>,
    /// The TCP peer's address.
    pub peer: Option<std::net::IpAddr>,
    /// Whether the TCP peer may set the client-IP header.
    pub peer_trusted: bool,
    /// Whether the client connection is TLS.
    pub tls: bool,
    /// The management endpoint answering this request, if any.
    pub endpoint: Option<&'static str>,
    /// The request's `Origin` and the CORS headers its responses get.
    pub cors: CorsState,
}

impl RequestCtx {
    /// A fresh context.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            path: None,
            upstream_uri: None,
            route: None,
            principal: None,
            plan: None,
            decision: Decision::Pending,
            response_headers: Vec::new(),
            upstream_started: None,
            local_reply_status: None,
            client_ip: None,
            peer: None,
            peer_trusted: false,
            tls: false,
            endpoint: None,
            cors: CorsState::default(),
        }
    }

    /// The route name for metrics.
    pub fn route_label(&self) -> &str {
        match (&self.route, self.endpoint) {
            (Some(r), _) => r.name.as_str(),
            (None, Some(e)) => e,
            (None, None) => "none",
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
