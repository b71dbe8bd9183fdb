//! The request pipeline of `request_filter`, in one direction: size check, path
//! normalisation and routing, management endpoints, credential, principal,
//! plan policies, admission. Each step either continues or ends the request.

use super::context::{Decision, Principal, RequestCtx};
use super::screening;
use super::{Charge, Gateway};
use crate::metrics::metrics;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::routing::{self, Access, RouteMatch};
use crate::store::StoreError;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::net::{IpAddr, Ipv4Addr};

/// What the pipeline decided.
#[derive(Debug)]
pub enum Flow {
    /// Send the request to the origin.
    Forward,
    /// Answer with this reply (a management endpoint's success).
    Respond(Reply),
}

fn header_bytes(req: &RequestHeader) -> usize {
    req.raw_path().len()
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>()
}

/// The TCP peer's address (loopback for non-IP sockets).
pub fn peer_ip(session: &Session) -> IpAddr {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|s| s.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Counts a decision made while the store was unreachable.
pub(crate) fn degraded(route: &str, outcome: &str) {
    metrics()
        .degraded_decisions
        .with_label_values(&[route, outcome])
        .inc();
}

/// A store failure as the client sees it: 503 with `Retry-After`.
pub(crate) fn store_failure(op: &'static str, e: StoreError) -> ApiError {
    metrics().store_errors.with_label_values(&[op]).inc();
    log::warn!("store {op} failed: {e}");
    ApiError::detail(
        ErrorKind::Unavailable,
        "temporarily unavailable; retry shortly",
    )
    .header("Retry-After", "1")
}

/// The 400 for a path that a lenient server could read as another endpoint.
fn ambiguous() -> ApiError {
    ApiError::detail(
        ErrorKind::BadRequest,
        "ambiguous path: a server could read it as a different endpoint; use the documented \
         spelling (letter case, no ';' parameters, no trailing dots or spaces)",
    )
}

/// Whether `path` is one of tollgate's own endpoints, compared exactly or,
/// with `loose`, as lenient servers compare ([`routing::loose_path`]).
fn is_management(cfg: &crate::config::Config, path: &str, loose: bool) -> bool {
    let read = |p: &str| {
        if loose {
            routing::loose_path(p)
        } else {
            p.to_string()
        }
    };
    let path = read(path);
    let under = |base: &str| {
        let base = read(base);
        let base = base.trim_end_matches('/');
        path == base || path.strip_prefix(base).is_some_and(|r| r.starts_with('/'))
    };
    cfg.trial.as_ref().is_some_and(|t| under(&t.path))
        || cfg
            .short_lived
            .as_ref()
            .is_some_and(|s| under(&s.tokens_path) || under(&s.inspect_path))
        || cfg.self_service.as_ref().is_some_and(|s| under(&s.path))
}

impl Gateway {
    /// Runs the pipeline for one request.
    pub async fn pipeline(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Flow, ApiError> {
        let cfg = &self.config;
        let req = session.req_header();
        if header_bytes(req) > cfg.server.max_header_bytes {
            return Err(ApiError::new(ErrorKind::HeadersTooLarge));
        }
        screening::method(&req.method)?;
        screening::connection(
            &req.headers,
            cfg.client_ip.header.as_ref().map(|h| h.as_str()),
        )?;
        let path = routing::normalize(req.raw_path())
            .map_err(|e| ApiError::detail(ErrorKind::BadRequest, e.to_string()))?;
        let method = req.method.clone();
        let peer = peer_ip(session);
        let client_ip = cfg.client_ip.client_ip(peer, &req.headers);
        ctx.client = Some(cfg.client_ip.bucket_key(client_ip));
        ctx.client_ip = Some(client_ip);
        ctx.peer = Some(peer);
        ctx.peer_trusted = cfg.client_ip.is_trusted(peer);
        if let Some(loose) = path.loose_path() {
            if is_management(cfg, &loose, true) && !is_management(cfg, &path.canonical, false) {
                return Err(ambiguous());
            }
        }

        if let Some(trial) = &cfg.trial {
            if path.canonical == trial.path {
                ctx.path = Some(path);
                if method != http::Method::POST {
                    return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", "POST"));
                }
                ctx.decision = Decision::Managed;
                ctx.endpoint = Some("trial");
                return self
                    .issue_trial(session, client_ip)
                    .await
                    .map(Flow::Respond);
            }
        }
        if let Some(sl) = &cfg.short_lived {
            if let Some(endpoint) = crate::management::short_lived::endpoint(sl, &path.canonical) {
                let query = path.query.clone();
                ctx.path = Some(path);
                ctx.decision = Decision::Managed;
                ctx.endpoint = Some("short_lived");
                return self
                    .short_lived(session, ctx, &method, endpoint, query.as_deref(), client_ip)
                    .await
                    .map(Flow::Respond);
            }
        }
        if let Some(ss) = &cfg.self_service {
            if let Some(rest) = path.canonical.strip_prefix(ss.path.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    let rest = rest.trim_start_matches('/').to_string();
                    ctx.path = Some(path);
                    ctx.decision = Decision::Managed;
                    ctx.endpoint = Some("self_service");
                    return self
                        .self_service(session, ctx, &method, &rest, client_ip)
                        .await
                        .map(Flow::Respond);
                }
            }
        }

        let route = match cfg.routes.find(&method, &path) {
            RouteMatch::Found(r) => r,
            RouteMatch::NotFound => {
                return Err(ApiError::detail(
                    ErrorKind::NotFound,
                    format!("no route for {}", path.canonical),
                ))
            }
            RouteMatch::Ambiguous(other) => {
                log::debug!("path {} could be read as route {other:?}", path.canonical);
                return Err(ambiguous());
            }
            RouteMatch::MethodNotAllowed(allowed) => {
                let allow = allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", allow));
            }
        };
        if path.upstream_target().parse::<http::Uri>().is_err() {
            return Err(ApiError::detail(
                ErrorKind::BadRequest,
                "the request target has characters that must be percent-encoded",
            ));
        }
        screening::upgrade(session.req_header_mut(), &route)?;
        ctx.route = Some(route.clone());
        if route.access == Access::Public {
            ctx.path = Some(path);
            ctx.decision = Decision::Public;
            return Ok(Flow::Forward);
        }

        let principal = self
            .principal(
                session,
                route.access,
                route.on_store_failure,
                &route.name,
                client_ip,
            )
            .await?;
        let plan = self.plan_of(&principal)?;
        if !route.plans.is_empty() && !route.plans.contains(&plan.name) {
            return Err(ApiError::detail(
                ErrorKind::Forbidden,
                format!("this endpoint is not available on the {} plan", plan.name),
            ));
        }
        screening::body(&session.req_header().headers, &plan)?;
        let mut path = path;
        path.query = super::policy::check_query(path.query.as_deref(), &plan, &cfg.query)
            .map_err(|reason| ApiError::detail(ErrorKind::BadRequest, reason))?;
        ctx.path = Some(path);
        let (owner, bucket) = self.metering_target(&principal, &plan);
        ctx.plan = Some(plan.clone());
        let token = match &principal {
            Principal::Token(claims) => Some(claims.as_ref().clone()),
            _ => None,
        };
        ctx.response_headers = self
            .admit(Charge {
                plan: &plan,
                owner,
                bucket,
                cost: route.cost,
                token: token.as_ref(),
                policy: route.on_store_failure,
                route: &route.name,
            })
            .await?;
        // Set only once admitted: a key's usage records admitted calls, not refusals.
        ctx.principal = Some(principal);
        ctx.decision = Decision::Admitted;
        Ok(Flow::Forward)
    }
}
