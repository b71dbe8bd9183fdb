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
//! | GET | /v1/keys?account=ID[&include=revoked,expired\|all] | list an account's active keys (and the ones asked for) |
//! | GET | /v1/keys/{id} | show one key |
//! | DELETE | /v1/keys/{id} | revoke |
//! | GET | /v1/keys/{id}/usage | lastUsedAt, last 50 calls, 7-day daily counts |

use super::keys::NewKey;
use super::{body, unavailable};
use crate::gateway::Gateway;
use crate::metering::credits::{within_bound, CreditCharge, MAX_CREDITS};
use crate::metering::plan::CreditPool;
use crate::metering::{Owner, Plan};
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::store::{Account, KeyKind, KeyRecord, DAILY_DAYS};
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

/// Refuses (400, naming `field`) a credit change that would take `balance`
/// beyond ±[`MAX_CREDITS`]: the Redis scripts count in doubles, exact only up
/// to 2^53, and 10^15 keeps every balance and cost exact.
fn check_credit_balance(field: &str, balance: i64, delta: i64) -> Result<(), ApiError> {
    let after = i128::from(balance) + i128::from(delta);
    if after.unsigned_abs() <= u128::from(MAX_CREDITS) {
        return Ok(());
    }
    Err(ApiError::detail(
        ErrorKind::BadRequest,
        format!(
            "field {field}: the balance would be {after}, beyond the largest credit amount (±{MAX_CREDITS})"
        ),
    )
    .details(json!({"balance": balance, "maxCredits": MAX_CREDITS})))
}

/// Where an account's credits live under its plan: `(owner, policy)`.
fn credit_owner(account: &Account, plan: &Plan) -> Option<(Owner, CreditCharge, CreditPool)> {
    let c = plan.credits.as_ref()?;
    let owner = match c.pool {
        CreditPool::Account => Owner::Account(account.id.clone()),
        CreditPool::Plan => Owner::Plan(plan.name.clone()),
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
                        Some((_, charge, _)) => {
                            let start = charge.current(None, now.timestamp_millis()).balance;
                            check_credit_balance("credits", start, n)?;
                        }
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
                if !within_bound(body.add) {
                    return Err(ApiError::detail(
                        ErrorKind::BadRequest,
                        format!("field add: must be between -{MAX_CREDITS} and {MAX_CREDITS}"),
                    ));
                }
                let balance = gw
                    .store
                    .add_credits(&owner, body.add, &charge)
                    .await
                    .map_err(|e| match e {
                        crate::store::StoreError::CreditRange { balance } => {
                            check_credit_balance("add", balance, body.add)
                                .err()
                                .unwrap_or_else(|| unavailable(e))
                        }
                        other => unavailable(other),
                    })?;
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
                let include = Include::parse(&query)?;
                let keys = gw.store.list_keys(account).await.map_err(unavailable)?;
                let mut out = Vec::with_capacity(keys.len());
                for k in keys.iter().filter(|k| include.shows(k, now)) {
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
                // The same lastUsedAt as the listing; revocation is idempotent,
                // so a failure here can be retried.
                let usage = gw.store.usage(id, 1, now).await.map_err(unavailable)?;
                Ok(Reply::json(200, &key.to_json(now, usage.last_used_at)))
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

/// Which inactive keys a listing shows besides the active ones
/// (`include=revoked`, `include=expired`, comma-separated, or `include=all`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Include {
    revoked: bool,
    expired: bool,
}

impl Include {
    /// Reads every `include` parameter of a query string.
    fn parse(query: &str) -> Result<Self, ApiError> {
        let mut include = Self::default();
        let values = query.split('&').filter_map(|p| p.strip_prefix("include="));
        for value in values {
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                match item {
                    "revoked" => include.revoked = true,
                    "expired" => include.expired = true,
                    "all" => {
                        include.revoked = true;
                        include.expired = true;
                    }
                    other => {
                        return Err(ApiError::detail(
                            ErrorKind::BadRequest,
                            format!(
                                "query parameter include: {other:?} is not revoked, expired or all"
                            ),
                        ))
                    }
                }
            }
        }
        Ok(include)
    }

    /// Whether the listing shows `k`: active keys always; a revoked one (even
    /// if also expired) with `revoked`, an expired one with `expired`.
    fn shows(self, k: &KeyRecord, now: DateTime<Utc>) -> bool {
        if k.revoked_at.is_some() {
            self.revoked
        } else if k.expires_at.is_some_and(|e| e <= now) {
            self.expired
        } else {
            true
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
    fn listings_hide_revoked_and_expired_keys_unless_asked() {
        let now = Utc::now();
        let key = |revoked: bool, expired: bool| KeyRecord {
            id: Uuid::new_v4(),
            hash: crate::auth::keys::KeyHash::of("x"),
            account: Some("a".into()),
            plan: None,
            name: "k".into(),
            key_prefix: "tg_x".into(),
            kind: KeyKind::Standard,
            created_at: now - chrono::Duration::days(2),
            expires_at: expired.then(|| now - chrono::Duration::days(1)),
            revoked_at: revoked.then_some(now),
        };
        let (active, revoked, expired, both) = (
            key(false, false),
            key(true, false),
            key(false, true),
            key(true, true),
        );
        let shown = |query: &str| {
            let inc = Include::parse(query).expect("include");
            [&active, &revoked, &expired, &both].map(|k| inc.shows(k, now))
        };
        assert_eq!(shown("account=a"), [true, false, false, false]);
        assert_eq!(
            shown("account=a&include=revoked"),
            [true, true, false, true]
        );
        assert_eq!(
            shown("include=expired&account=a"),
            [true, false, true, false]
        );
        assert_eq!(shown("account=a&include=revoked%2Cexpired"), [true; 4]);
        assert_eq!(shown("account=a&include=all"), [true; 4]);
        assert!(Include::parse("account=a&include=deleted").is_err());
    }

    #[test]
    fn account_ids() {
        assert!(check_account_id("acme-prod_1.x").is_ok());
        assert!(check_account_id("").is_err());
        assert!(check_account_id("a b").is_err());
        assert!(check_account_id(&"a".repeat(65)).is_err());
    }
}
