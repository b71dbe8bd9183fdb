//! The operator's admin API, on its own listener (loopback by default), behind
//! a bearer token compared in constant time. The `tollgate accounts|keys`
//! commands are its client.
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | /healthz | liveness, no token needed |
//! | POST | /v1/accounts | create `{id, plan, credits?}` |
//! | GET | /v1/accounts/{id} | show, with the credit balance |
//! | POST | /v1/accounts/{id}/credits | `{add: N}`: change the balance |
//! | POST | /v1/keys | create `{account, name, expiresAt?}`; the only response with the plaintext |
//! | GET | /v1/keys?account=ID | list an account's keys |
//! | GET | /v1/keys/{id} | show one key |
//! | DELETE | /v1/keys/{id} | revoke |
//! | GET | /v1/keys/{id}/usage | lastUsedAt, last 50 calls, 7-day daily counts |

use super::keys::NewKey;
use super::{body, unavailable};
use crate::gateway::Gateway;
use crate::metering::credits::CreditCharge;
use crate::metering::plan::CreditPool;
use crate::metering::Plan;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::store::{Account, KeyKind, DAILY_DAYS};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The admin API application.
pub struct AdminApi(pub Arc<Gateway>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAccount {
    id: String,
    plan: String,
    /// Starting credits (added to the balance).
    #[serde(default)]
    credits: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddCredits {
    add: i64,
}

/// Where an account's credits live under its plan: `(owner, policy)`.
fn credit_owner(account: &Account, plan: &Plan) -> Option<(String, CreditCharge, CreditPool)> {
    let c = plan.credits.as_ref()?;
    let owner = match c.pool {
        CreditPool::Account => format!("a:{}", account.id),
        CreditPool::Plan => format!("p:{}", plan.name),
    };
    let charge = CreditCharge {
        cost: 0,
        budget: c.budget,
        refill_ms: c
            .refill
            .map(|r| i64::try_from(r.as_millis()).unwrap_or(i64::MAX)),
    };
    Some((owner, charge, c.pool))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateKey {
    account: String,
    name: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// Checks an account id: 1 to 64 of `[A-Za-z0-9._-]` (it travels in headers).
pub fn check_account_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::detail(
            ErrorKind::BadRequest,
            "field id: must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
        ))
    }
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

impl AdminApi {
    async fn account(&self, id: &str) -> Result<Account, ApiError> {
        self.0
            .store
            .account(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| not_found("account"))
    }

    async fn read_body(&self, session: &mut ServerSession) -> Result<Vec<u8>, ApiError> {
        body::read(session, self.0.config.server.max_body_bytes).await
    }

    async fn handle(&self, session: &mut ServerSession) -> Result<Reply, ApiError> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let query = req.uri.query().unwrap_or("").to_string();
        if path == "/healthz" {
            return Ok(Reply::json(200, &json!({"status": "ok"})));
        }
        let token = self
            .0
            .config
            .admin
            .as_ref()
            .and_then(|a| a.token.as_deref());
        if !token_ok(
            token,
            req.headers.get("authorization").map(|v| v.as_bytes()),
        ) {
            return Err(
                ApiError::detail(ErrorKind::Unauthorized, "admin token required")
                    .var("detail", "admin token required")
                    .header("WWW-Authenticate", "Bearer"),
            );
        }
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let gw = &self.0;
        let now = Utc::now();
        match (&method, segments.as_slice()) {
            (&Method::POST, ["v1", "accounts"]) => {
                let body: CreateAccount = body::parse(&self.read_body(session).await?)?;
                check_account_id(&body.id)?;
                if !gw.config.plans.contains_key(&body.plan) {
                    return Err(ApiError::detail(
                        ErrorKind::BadRequest,
                        format!(
                            "field plan: {:?} is not a plan (plans: {})",
                            body.plan,
                            gw.config
                                .plans
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                let plan = gw.config.plans.get(&body.plan).cloned();
                let credit_target = plan.as_ref().and_then(|p| {
                    credit_owner(
                        &Account {
                            id: body.id.clone(),
                            plan: body.plan.clone(),
                            created_at: now,
                        },
                        p,
                    )
                });
                if let Some(n) = body.credits {
                    match &credit_target {
                        None => {
                            return Err(ApiError::detail(
                                ErrorKind::BadRequest,
                                format!("field credits: plan {:?} does not meter credits", body.plan),
                            ))
                        }
                        Some((_, _, CreditPool::Plan)) => {
                            return Err(ApiError::detail(
                                ErrorKind::BadRequest,
                                format!("field credits: plan {:?} draws from one pooled balance, not per account", body.plan),
                            ))
                        }
                        Some(_) if n < 0 => {
                            return Err(ApiError::detail(ErrorKind::BadRequest, "field credits: must not be negative"))
                        }
                        Some(_) => {}
                    }
                }
                let account = gw
                    .store
                    .create_account(Account {
                        id: body.id,
                        plan: body.plan,
                        created_at: now,
                    })
                    .await
                    .map_err(|e| match e {
                        crate::store::StoreError::Conflict(what) => {
                            ApiError::detail(ErrorKind::Conflict, format!("{what} already exists"))
                        }
                        other => unavailable(other),
                    })?;
                let mut view = account.to_json();
                if let Some((owner, charge, _)) = credit_target {
                    let balance = match body.credits {
                        Some(n) if n > 0 => gw.store.add_credits(&owner, n, &charge).await,
                        _ => gw.store.credit_balance(&owner, &charge).await,
                    }
                    .map_err(unavailable)?;
                    view["credits"] = json!(balance);
                }
                Ok(Reply::json(201, &view))
            }
            (&Method::POST, ["v1", "accounts", id, "credits"]) => {
                let body: AddCredits = body::parse(&self.read_body(session).await?)?;
                let account = self.account(id).await?;
                let plan = gw.config.plans.get(&account.plan).cloned().ok_or_else(|| {
                    ApiError::detail(
                        ErrorKind::Conflict,
                        format!("plan {} is no longer configured", account.plan),
                    )
                })?;
                let Some((owner, charge, _)) = credit_owner(&account, &plan) else {
                    return Err(ApiError::detail(
                        ErrorKind::BadRequest,
                        format!("plan {:?} does not meter credits", account.plan),
                    ));
                };
                let balance = gw
                    .store
                    .add_credits(&owner, body.add, &charge)
                    .await
                    .map_err(unavailable)?;
                log::info!(
                    "credits of {owner} changed by {}: balance {balance}",
                    body.add
                );
                Ok(Reply::json(
                    200,
                    &json!({"account": account.id, "credits": balance}),
                ))
            }
            (&Method::GET, ["v1", "accounts", id]) => {
                let account = self.account(id).await?;
                let keys = gw.store.list_keys(id).await.map_err(unavailable)?;
                let mut view = account.to_json();
                view["activeKeys"] = json!(keys.iter().filter(|k| k.is_active(now)).count());
                let plan = gw.config.plans.get(&account.plan);
                view["maxActiveKeys"] = json!(plan.and_then(|p| p.max_active_keys));
                if let Some((owner, charge, pool)) = plan.and_then(|p| credit_owner(&account, p)) {
                    let balance = gw
                        .store
                        .credit_balance(&owner, &charge)
                        .await
                        .map_err(unavailable)?;
                    view["credits"] = json!(balance);
                    view["creditPool"] = json!(match pool {
                        CreditPool::Account => "account",
                        CreditPool::Plan => "plan",
                    });
                }
                Ok(Reply::json(200, &view))
            }
            (&Method::POST, ["v1", "keys"]) => {
                let body: CreateKey = body::parse(&self.read_body(session).await?)?;
                let account = gw
                    .store
                    .account(&body.account)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| {
                        ApiError::detail(
                            ErrorKind::NotFound,
                            format!("account {} not found", body.account),
                        )
                    })?;
                let issued = gw
                    .issue_key(NewKey {
                        account: Some(account),
                        plan: None,
                        name: body.name,
                        expires_at: body.expires_at,
                        kind: KeyKind::Standard,
                    })
                    .await?;
                Ok(Reply::json(201, &issued.to_json()))
            }
            (&Method::GET, ["v1", "keys"]) => {
                let account = query
                    .split('&')
                    .find_map(|p| p.strip_prefix("account="))
                    .ok_or_else(|| {
                        ApiError::detail(
                            ErrorKind::BadRequest,
                            "query parameter account is required",
                        )
                    })?;
                let keys = gw.store.list_keys(account).await.map_err(unavailable)?;
                let mut out = Vec::with_capacity(keys.len());
                for k in &keys {
                    let usage = gw.store.usage(k.id, 1, now).await.map_err(unavailable)?;
                    out.push(k.to_json(now, usage.last_used_at));
                }
                Ok(Reply::json(200, &json!({"keys": out})))
            }
            (&Method::GET, ["v1", "keys", id]) => {
                let id = parse_id(id)?;
                let key = gw
                    .store
                    .key(id)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| not_found("key"))?;
                let usage = gw.store.usage(id, 1, now).await.map_err(unavailable)?;
                Ok(Reply::json(200, &key.to_json(now, usage.last_used_at)))
            }
            (&Method::DELETE, ["v1", "keys", id]) => {
                let id = parse_id(id)?;
                let key = gw.revoke_key(id).await?.ok_or_else(|| not_found("key"))?;
                log::info!("revoked key {} ({})", key.key_prefix, key.id);
                Ok(Reply::json(200, &key.to_json(now, None)))
            }
            (&Method::GET, ["v1", "keys", id, "usage"]) => {
                let id = parse_id(id)?;
                gw.store
                    .key(id)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| not_found("key"))?;
                let usage = gw
                    .store
                    .usage(id, DAILY_DAYS, now)
                    .await
                    .map_err(unavailable)?;
                Ok(Reply::json(200, &usage.to_json(id)))
            }
            _ => Err(ApiError::detail(
                ErrorKind::NotFound,
                format!("no admin endpoint {method} {path}"),
            )),
        }
    }
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::detail(ErrorKind::BadRequest, "key id must be a UUID"))
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let reply = match self.handle(session).await {
            Ok(r) => r,
            Err(e) => self.0.config.errors.render(&e),
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

    #[test]
    fn account_ids() {
        assert!(check_account_id("acme-prod_1.x").is_ok());
        assert!(check_account_id("").is_err());
        assert!(check_account_id("a b").is_err());
        assert!(check_account_id(&"a".repeat(65)).is_err());
    }
}
