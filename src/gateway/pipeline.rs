//! The request pipeline of `request_filter`, in one direction: size check, path
//! normalisation and routing, management endpoints, credential, principal,
//! admission. Each step either continues or ends the request with a reply.

use super::context::{Decision, Principal, RequestCtx};
use super::Gateway;
use crate::auth::credential;
use crate::auth::keys::KeyHash;
use crate::config::duration::window_label;
use crate::metering::headers::rate_limit_headers;
use crate::metering::{Admission, Plan, Verdict};
use crate::metrics::metrics;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::routing::{self, Access, Route, RouteMatch, StoreFailure};
use crate::store::{Meter, StoreError};
use chrono::Utc;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

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

fn degraded(route: &str, outcome: &str) {
    metrics()
        .degraded_decisions
        .with_label_values(&[route, outcome])
        .inc();
}

fn store_failure(op: &'static str, e: StoreError) -> ApiError {
    metrics().store_errors.with_label_values(&[op]).inc();
    log::warn!("store {op} failed: {e}");
    ApiError::detail(
        ErrorKind::Unavailable,
        "temporarily unavailable; retry shortly",
    )
    .header("Retry-After", "1")
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
        let path = routing::normalize(req.raw_path())
            .map_err(|e| ApiError::detail(ErrorKind::BadRequest, e.to_string()))?;
        let method = req.method.clone();
        let client_ip = cfg.client_ip.client_ip(peer_ip(session), &req.headers);

        if let Some(trial) = &cfg.trial {
            if path.canonical == trial.path {
                ctx.path = Some(path);
                if method != http::Method::POST {
                    return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", "POST"));
                }
                ctx.decision = Decision::Managed;
                return self
                    .issue_trial(session, client_ip)
                    .await
                    .map(Flow::Respond);
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
            RouteMatch::MethodNotAllowed(allowed) => {
                let allow = allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", allow));
            }
        };
        let upstream_target = match &path.query {
            Some(q) => format!("{}?{}", path.canonical, q),
            None => path.canonical.clone(),
        };
        if upstream_target.parse::<http::Uri>().is_err() {
            return Err(ApiError::detail(
                ErrorKind::BadRequest,
                "the request target has characters that must be percent-encoded",
            ));
        }
        ctx.path = Some(path);
        ctx.route = Some(route.clone());
        if route.access == Access::Public {
            ctx.decision = Decision::Public;
            return Ok(Flow::Forward);
        }

        let policy = route.on_store_failure;
        let principal = self.principal(session, &route, client_ip).await?;
        let (plan, bucket) = match &principal {
            Principal::Anonymous { ip } => {
                let plan = cfg
                    .anonymous_plan
                    .clone()
                    .ok_or_else(|| ApiError::new(ErrorKind::Unauthorized))?;
                (plan, format!("ip:{}", cfg.client_ip.bucket_key(*ip)))
            }
            Principal::Key(identity) => {
                let plan = cfg.plans.get(&identity.plan).cloned().ok_or_else(|| {
                    log::warn!(
                        "key {} is on plan {:?}, which the config does not define",
                        identity.key.key_prefix,
                        identity.plan
                    );
                    ApiError::detail(ErrorKind::Forbidden, "this key's plan is not available")
                })?;
                (plan, format!("key:{}", identity.key.id))
            }
        };
        ctx.principal = Some(principal);
        ctx.plan = Some(plan.clone());
        ctx.response_headers = self.admit(&plan, bucket, policy, &route.name).await?;
        ctx.decision = Decision::Admitted;
        Ok(Flow::Forward)
    }

    /// Finds who is calling. A credential that is present but bad is a 401,
    /// never a fallback to anonymous.
    async fn principal(
        &self,
        session: &Session,
        route: &Route,
        client_ip: IpAddr,
    ) -> Result<Principal, ApiError> {
        let access = route.access;
        let cfg = &self.config;
        let unauthorized =
            || ApiError::new(ErrorKind::Unauthorized).header("WWW-Authenticate", "Bearer");
        let cred =
            credential::extract(&session.req_header().headers, &cfg.credentials).map_err(|e| {
                log::debug!("credential refused: {e}");
                unauthorized()
            })?;
        let Some(cred) = cred else {
            return match access {
                Access::Anonymous => Ok(Principal::Anonymous { ip: client_ip }),
                _ => Err(unauthorized()),
            };
        };
        if !cfg.keys.matches(&cred.token) {
            return Err(unauthorized());
        }
        let hash = KeyHash::of(&cred.token);
        let identity = match self.store.resolve(&hash).await {
            Ok(found) => found,
            Err(e) => match (route.on_store_failure, self.store.cached(&hash)) {
                (StoreFailure::FailOpen, Some(cached)) => {
                    degraded(&route.name, "cached_key");
                    Some(cached)
                }
                (StoreFailure::FailOpen, None) => {
                    degraded(&route.name, "unknown_key");
                    return Err(store_failure("resolve", e));
                }
                (StoreFailure::FailClosed, _) => {
                    degraded(&route.name, "fail_closed");
                    return Err(store_failure("resolve", e));
                }
            },
        }
        .ok_or_else(unauthorized)?;
        if !identity.key.is_active(Utc::now()) {
            log::debug!("inactive key {} refused", identity.key.key_prefix);
            return Err(unauthorized());
        }
        Ok(Principal::Key(Box::new(identity)))
    }

    /// Takes a token from the bucket and returns the rate-limit headers, or
    /// refuses with 429 and those headers.
    pub(crate) async fn admit(
        &self,
        plan: &Arc<Plan>,
        bucket: String,
        policy: StoreFailure,
        route: &str,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let admission = Admission {
            bucket,
            interval_us: plan.interval_us(),
            burst: plan.burst,
        };
        let outcome = match self.store.admit(&admission).await {
            Ok(o) => o,
            Err(e) if policy == StoreFailure::FailOpen => {
                log::debug!("store unreachable ({e}); local limiter decides");
                let o = self
                    .fallback
                    .admit(&admission)
                    .await
                    .map_err(|e| store_failure("admit", e))?;
                degraded(
                    route,
                    if o.verdict == Verdict::Allowed {
                        "local_allowed"
                    } else {
                        "local_limited"
                    },
                );
                o
            }
            Err(e) => {
                degraded(route, "fail_closed");
                return Err(store_failure("admit", e));
            }
        };
        let headers = rate_limit_headers(plan, &outcome);
        match outcome.verdict {
            Verdict::Allowed => Ok(headers),
            Verdict::RateLimited => {
                let mut err = ApiError::new(ErrorKind::RateLimited)
                    .var("limit", plan.rate.to_string())
                    .var("window", window_label(plan.window));
                err.headers = headers;
                Err(err)
            }
        }
    }
}
