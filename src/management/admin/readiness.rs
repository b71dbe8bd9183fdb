//! `GET /readyz`: whether this instance should receive traffic. Ready when
//! the store answers (or every metered route may serve without it) and every
//! origin has a server the proxy may pick; otherwise a 503 that names what
//! is not ready, with `Retry-After`. No token needed, like `/healthz`.

use crate::config::Config;
use crate::gatekeeper::Gatekeeper;
use crate::origin::OriginHealth;
use crate::reply::Reply;
use crate::routing::{Access, StoreFailure};
use serde_json::{Map, Value};

/// Seconds a prober is told to wait before asking again.
const RETRY_AFTER: &str = "5";

/// The store as readiness sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreState {
    Reachable,
    /// Unreachable, and every metered route is `fail_open`: serving goes on.
    UnreachableAllowed,
    Unreachable,
}

/// Whether every metered route serves while the store is unreachable
/// (`on_store_failure = "fail_open"`). Public routes never touch the store.
fn serves_without_store(config: &Config) -> bool {
    config
        .routes
        .routes()
        .iter()
        .filter(|r| r.access != Access::Public)
        .all(|r| r.on_store_failure == StoreFailure::FailOpen)
}

/// Asks the store and the origins; answers 200 or 503.
pub(super) async fn readiness(gw: &Gatekeeper, origins: &OriginHealth) -> Reply {
    let store = match gw.store.ping().await {
        Ok(()) => StoreState::Reachable,
        Err(e) => {
            log::debug!("readiness: store unreachable: {e}");
            if serves_without_store(&gw.config) {
                StoreState::UnreachableAllowed
            } else {
                StoreState::Unreachable
            }
        }
    };
    render(store, &origins.without_healthy_server())
}

/// The answer for a store state and the origins without a healthy server.
fn render(store: StoreState, unhealthy: &[&str]) -> Reply {
    let ready = store != StoreState::Unreachable && unhealthy.is_empty();
    let mut body = Map::new();
    let status = if ready { "ready" } else { "not ready" };
    body.insert("status".into(), Value::from(status));
    match store {
        StoreState::Reachable => {}
        StoreState::UnreachableAllowed => {
            body.insert(
                "store".into(),
                Value::from("unreachable (allowed: every metered route is fail_open)"),
            );
        }
        StoreState::Unreachable => {
            body.insert("store".into(), Value::from("unreachable"));
        }
    }
    if !unhealthy.is_empty() {
        let origins: Map<String, Value> = unhealthy
            .iter()
            .map(|name| (name.to_string(), Value::from("no healthy server")))
            .collect();
        body.insert("origins".into(), Value::Object(origins));
    }
    let mut reply = Reply::json(if ready { 200 } else { 503 }, &Value::Object(body));
    if !ready {
        reply
            .headers
            .push(("Retry-After".into(), RETRY_AFTER.into()));
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    }

    #[test]
    fn ready_only_with_the_store_and_every_origin() {
        let r = render(StoreState::Reachable, &[]);
        assert_eq!((r.status, body(&r)), (200, json!({"status": "ready"})));
        assert!(r.headers.is_empty());

        let r = render(StoreState::Unreachable, &["api", "eu"]);
        assert_eq!(r.status, 503);
        assert_eq!(
            body(&r),
            json!({"status": "not ready", "store": "unreachable",
                   "origins": {"api": "no healthy server", "eu": "no healthy server"}})
        );
        assert_eq!(r.headers, vec![("Retry-After".into(), "5".into())]);
    }

    #[test]
    fn an_unreachable_store_is_allowed_when_every_route_fails_open() {
        let r = render(StoreState::UnreachableAllowed, &[]);
        assert_eq!(r.status, 200);
        assert_eq!(
            body(&r)["store"],
            "unreachable (allowed: every metered route is fail_open)"
        );
        let r = render(StoreState::UnreachableAllowed, &["api"]);
        assert_eq!(r.status, 503);
    }
}
