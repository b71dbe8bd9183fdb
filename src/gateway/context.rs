//! The per-request context: every decision the pipeline makes is recorded here
//! for the later hooks (forwarding, response headers, logging).

use super::cors::CorsState;
use crate::gatekeeper::Principal;
use crate::metering::Plan;
use crate::routing::{NormalPath, Route};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Refused by tollgate, with the refusal's kind ([`crate::reply::ErrorKind::name`]).
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

    /// The refusal's kind, for a rejected request.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Decision::Rejected(kind) => Some(kind),
            _ => None,
        }
    }
}

/// Who a request was made by, kept for the access log when the request is
/// refused after its caller is known (a 402 or 429: `principal` is set only
/// once a call is admitted). Never a credential.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub account: Option<String>,
    pub key_id: Option<uuid::Uuid>,
    pub key_prefix: Option<String>,
    pub plan: Option<String>,
}

impl Caller {
    /// The identity of a principal.
    pub fn of(principal: &Principal) -> Self {
        match principal {
            Principal::Anonymous { .. } => Self::default(),
            Principal::Key(identity) => Self {
                account: identity.key.account.clone(),
                key_id: Some(identity.key.id),
                key_prefix: Some(identity.key.key_prefix.clone()),
                plan: Some(identity.plan.clone()),
            },
            Principal::Token(claims) => Self {
                account: Some(claims.sub.clone()),
                key_id: Some(claims.parent),
                key_prefix: None,
                plan: Some(claims.plan.clone()),
            },
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
    /// The request id ([`super::request_id`]): decided first thing in the
    /// pipeline; empty before.
    pub request_id: String,
    /// The caller of a request refused after its caller was known (recorded
    /// only when the access log is on).
    pub caller: Option<Caller>,
    /// Credits the admitted call was charged (0 on a plan without credits).
    pub cost: Option<u64>,
    /// The balance in `X-Credits-Remaining`, where tollgate computed one.
    pub credits_remaining: Option<i64>,
    /// From sending the request upstream to the origin's response header.
    pub upstream_elapsed: Option<Duration>,
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
            request_id: String::new(),
            caller: None,
            cost: None,
            credits_remaining: None,
            upstream_elapsed: None,
        }
    }

    /// Decides the request id from the request's headers, unless it is decided.
    pub fn decide_request_id(&mut self, headers: &http::HeaderMap) {
        if self.request_id.is_empty() {
            self.request_id = super::request_id::of(headers);
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
