//! Keys in the admin API: create (the only response with the plaintext),
//! list an account's keys (inactive ones on request), show, revoke, usage.

use super::{not_found, read_body};
use crate::gatekeeper::{Gatekeeper, OrUnavailable};
use crate::management::body;
use crate::management::keys::NewKey;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::store::{KeyKind, KeyRecord, DAILY_DAYS};
use chrono::{DateTime, Utc};
use pingora::protocols::http::ServerSession;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateKey {
    account: String,
    name: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
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

/// `POST /v1/keys`.
pub async fn create(gw: &Gatekeeper, session: &mut ServerSession) -> Result<Reply, ApiError> {
    let body: CreateKey = body::parse(&read_body(gw, session).await?)?;
    let account = gw
        .store
        .account(&body.account)
        .await
        .or_unavailable("admin")?
        .ok_or_else(|| {
            ApiError::detail(
                ErrorKind::NotFound,
                format!("account {} not found", body.account),
            )
        })?;
    let issued = crate::management::keys::issue(
        gw,
        NewKey {
            account: Some(account),
            plan: None,
            name: body.name,
            expires_at: body.expires_at,
            kind: KeyKind::Standard,
        },
    )
    .await?;
    Ok(Reply::json(201, &issued.to_json()))
}

/// `GET /v1/keys?account=ID[&include=…]`.
pub async fn list(gw: &Gatekeeper, query: &str) -> Result<Reply, ApiError> {
    let now = Utc::now();
    let account = query
        .split('&')
        .find_map(|p| p.strip_prefix("account="))
        .ok_or_else(|| {
            ApiError::detail(ErrorKind::BadRequest, "query parameter account is required")
        })?;
    let include = Include::parse(query)?;
    let keys = gw.store.list_keys(account).await.or_unavailable("admin")?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys.iter().filter(|k| include.shows(k, now)) {
        let usage = gw.store.usage(k.id, 1, now).await.or_unavailable("admin")?;
        out.push(k.to_json(now, usage.last_used_at));
    }
    Ok(Reply::json(200, &json!({"keys": out})))
}

/// `GET /v1/keys/{id}`.
pub async fn show(gw: &Gatekeeper, id: Uuid) -> Result<Reply, ApiError> {
    let now = Utc::now();
    let key = gw
        .store
        .key(id)
        .await
        .or_unavailable("admin")?
        .ok_or_else(|| not_found("key"))?;
    let usage = gw.store.usage(id, 1, now).await.or_unavailable("admin")?;
    Ok(Reply::json(200, &key.to_json(now, usage.last_used_at)))
}

/// `DELETE /v1/keys/{id}`.
pub async fn revoke(gw: &Gatekeeper, id: Uuid) -> Result<Reply, ApiError> {
    let now = Utc::now();
    let key = crate::management::keys::revoke(gw, id)
        .await?
        .ok_or_else(|| not_found("key"))?;
    log::info!("revoked key {} ({})", key.key_prefix, key.id);
    // The same lastUsedAt as the listing; revocation is idempotent,
    // so a failure here can be retried.
    let usage = gw.store.usage(id, 1, now).await.or_unavailable("admin")?;
    Ok(Reply::json(200, &key.to_json(now, usage.last_used_at)))
}

/// `GET /v1/keys/{id}/usage`.
pub async fn usage(gw: &Gatekeeper, id: Uuid) -> Result<Reply, ApiError> {
    let now = Utc::now();
    gw.store
        .key(id)
        .await
        .or_unavailable("admin")?
        .ok_or_else(|| not_found("key"))?;
    let usage = gw
        .store
        .usage(id, DAILY_DAYS, now)
        .await
        .or_unavailable("admin")?;
    Ok(Reply::json(200, &usage.to_json(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
