//! The operator's admin API, on its own listener (loopback by default), behind
//! a bearer token compared in constant time. The `tollgate accounts|keys`
//! commands are its client.
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | /healthz | liveness, no token needed |
//! | GET | /readyz | readiness (store and origins), no token needed: 200 or 503 |
//! | POST | /v1/accounts | create `{id, plan, credits?}` |
//! | GET | /v1/accounts/{id} | show, with the credit balance |
//! | POST | /v1/accounts/{id}/credits | `{add: N}`: change the balance |
//! | POST | /v1/keys | create `{account, name, expiresAt?}`; the only response with the plaintext |
//! | GET | /v1/keys?account=ID[&include=revoked,expired\|all] | list an account's active keys (and the ones asked for) |
//! | GET | /v1/keys/{id} | show one key |
//! | DELETE | /v1/keys/{id} | revoke |
//! | GET | /v1/keys/{id}/usage | lastUsedAt, last 50 calls, 7-day daily counts |

mod accounts;
mod keys;
mod readiness;

use super::body;
use crate::gatekeeper::{Gatekeeper, OrUnavailable};
use crate::origin::OriginHealth;
use crate::reply::{ApiError, ErrorKind, Reply};
use async_trait::async_trait;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The admin API application.
pub struct AdminApi {
    pub gatekeeper: Arc<Gatekeeper>,
    /// The origins' server health, for `/readyz`.
    pub origins: OriginHealth,
}

fn token_ok(expected: Option<&str>, header: Option<&[u8]>) -> bool {
    let (Some(expected), Some(header)) = (expected, header) else {
        return false;
    };
    let Some(given) = header
        .strip_prefix(b"Bearer ")
        .or_else(|| header.strip_prefix(b"bearer "))
    else {
        return false;
    };
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(given);
    a.ct_eq(&b).into()
}

fn not_found(what: &str) -> ApiError {
    ApiError::detail(ErrorKind::NotFound, format!("{what} not found"))
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::detail(ErrorKind::BadRequest, "key id must be a UUID"))
}

async fn read_body(gw: &Gatekeeper, session: &mut ServerSession) -> Result<Vec<u8>, ApiError> {
    body::read(session, gw.config.server.max_body_bytes).await
}

/// Whether the request carries the admin token.
fn authorized(gw: &Gatekeeper, session: &ServerSession) -> bool {
    let expected = gw.config.admin.as_ref().and_then(|a| a.token.as_deref());
    let given = session
        .req_header()
        .headers
        .get("authorization")
        .map(|v| v.as_bytes());
    token_ok(expected, given)
}

impl AdminApi {
    /// Authenticates and dispatches one call to its endpoint.
    async fn handle(&self, session: &mut ServerSession) -> Result<Reply, ApiError> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let query = req.uri.query().unwrap_or("").to_string();
        if path == "/healthz" {
            return Ok(Reply::json(200, &json!({"status": "ok"})));
        }
        let gw = self.gatekeeper.as_ref();
        if path == "/readyz" {
            return Ok(readiness::readiness(gw, &self.origins).await);
        }
        if !authorized(gw, session) {
            return Err(
                ApiError::detail(ErrorKind::Unauthorized, "admin token required")
                    .var("detail", "admin token required")
                    .header("WWW-Authenticate", "Bearer"),
            );
        }
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match (&method, segments.as_slice()) {
            (&Method::POST, ["v1", "accounts"]) => accounts::create(gw, session).await,
            (&Method::POST, ["v1", "accounts", id, "credits"]) => {
                accounts::add_credits(gw, session, id).await
            }
            (&Method::GET, ["v1", "accounts", id]) => accounts::show(gw, id).await,
            (&Method::POST, ["v1", "keys"]) => keys::create(gw, session).await,
            (&Method::GET, ["v1", "keys"]) => keys::list(gw, &query).await,
            (&Method::GET, ["v1", "keys", id]) => keys::show(gw, parse_id(id)?).await,
            (&Method::DELETE, ["v1", "keys", id]) => keys::revoke(gw, parse_id(id)?).await,
            (&Method::GET, ["v1", "keys", id, "usage"]) => keys::usage(gw, parse_id(id)?).await,
            _ => Err(ApiError::detail(
                ErrorKind::NotFound,
                format!("no admin endpoint {method} {path}"),
            )),
        }
    }
}

/// The account `id`, or 404.
async fn account(gw: &Gatekeeper, id: &str) -> Result<crate::store::Account, ApiError> {
    gw.store
        .account(id)
        .await
        .or_unavailable("admin")?
        .ok_or_else(|| not_found("account"))
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let reply = match self.handle(session).await {
            Ok(r) => r,
            Err(e) => self.gatekeeper.config.errors.render(&e),
        };
        let mut builder = Response::builder()
            .status(reply.status)
            .header("content-type", "application/json")
            .header("content-length", reply.body.len())
            .header("cache-control", "no-store");
        for (k, v) in &reply.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        builder
            .body(reply.body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_comparison() {
        let t = Some("0123456789abcdef0123");
        assert!(token_ok(t, Some(b"Bearer 0123456789abcdef0123")));
        assert!(!token_ok(t, Some(b"Bearer 0123456789abcdef012")));
        assert!(!token_ok(t, Some(b"0123456789abcdef0123")));
        assert!(!token_ok(t, None));
        assert!(!token_ok(None, Some(b"Bearer x")));
    }
}
