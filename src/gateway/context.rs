//! The per-request context: every decision the pipeline makes is recorded here
//! for the later hooks (forwarding, response headers, logging).

use crate::auth::jwt::TokenClaims;
use crate::metering::Plan;
use crate::routing::{NormalPath, Route};
use crate::store::Identity;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No credential, on an `anonymous` route: metered per client IP.
    Anonymous { ip: IpAddr },
    /// A long-lived key.
    Key(Box<Identity>),
    /// A short-lived token minted from a static key.
    Token(Box<TokenClaims>),
}

impl Principal {
    /// The long-lived key this principal's usage is recorded under.
    pub fn usage_key(&self) -> Option<uuid::Uuid> {
        match self {
            Principal::Anonymous { .. } => None,
            Principal::Key(identity) => Some(identity.key.id),
            Principal::Token(claims) => Some(claims.key),
        }
    }
}

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
            Decision::Rejected(_) => "rejected",
        }
    }
}

/// State carried through the Pingora hooks of one request.
#[derive(Debug)]
pub struct RequestCtx {
    pub started: Instant,
    pub path: Option<NormalPath>,
    pub route: Option<Arc<Route>>,
    pub principal: Option<Principal>,
    pub plan: Option<Arc<Plan>>,
    pub decision: Decision,
    /// Headers added to the response (rate-limit state).
    pub response_headers: Vec<(String, String)>,
    /// When the request was sent upstream.
    pub upstream_started: Option<Instant>,
    /// Status of a response tollgate wrote itself.
    pub own_status: Option<u16>,
    /// The client's metering key (IPv4 address or IPv6 prefix).
    pub client: Option<String>,
    /// The client's address.
    pub client_ip: Option<std::net::IpAddr>,
    /// The TCP peer's address.
    pub peer: Option<std::net::IpAddr>,
    /// Whether the TCP peer may set the client-IP header.
    pub peer_trusted: bool,
    /// The management endpoint answering this request, if any.
    pub endpoint: Option<&'static str>,
}

impl RequestCtx {
    /// A fresh context.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            path: None,
            route: None,
            principal: None,
            plan: None,
            decision: Decision::Pending,
            response_headers: Vec::new(),
            upstream_started: None,
            own_status: None,
            client: None,
            client_ip: None,
            peer: None,
            peer_trusted: false,
            endpoint: None,
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
