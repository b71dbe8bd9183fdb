//! Issuing keys: one function used by the admin API, the trial endpoint and
//! self-service endpoints. The plaintext exists only in the returned value.

use crate::auth::keys::KeyHash;
use crate::gatekeeper::{store_failure, Gatekeeper, OrUnavailable};
use crate::metering::Owner;
use crate::metrics::metrics;
use crate::reply::{ApiError, ErrorKind};
use crate::store::{rfc3339, Account, KeyKind, KeyRecord, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

/// Longest key name.
pub const MAX_NAME: usize = 100;

/// What to issue.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub account: Option<Account>,
    /// The plan for keys without an account.
    pub plan: Option<String>,
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub kind: KeyKind,
}

/// A freshly issued key with its plaintext, shown this once.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub record: KeyRecord,
    pub token: String,
}

impl IssuedKey {
    /// The creation response: the only place the plaintext appears.
    pub fn to_json(&self) -> Value {
        let r = &self.record;
        json!({
            "id": r.id,
            "token": self.token,
            "keyPrefix": r.key_prefix,
            "name": r.name,
            "account": r.account,
            "kind": r.kind,
            "createdAt": rfc3339(&r.created_at),
            "expiresAt": r.expires_at.as_ref().map(rfc3339),
        })
    }
}

/// Checks a key name: 1 to 100 characters, no control characters.
pub fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::detail(
            ErrorKind::BadRequest,
            "name must not be empty",
        ));
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::detail(
            ErrorKind::BadRequest,
            format!("name must be at most {MAX_NAME} characters, without control characters"),
        ));
    }
    Ok(name.to_string())
}

/// Revokes a key and every short-lived token minted from it; `None` if
/// there is no such key.
pub async fn revoke(gk: &Gatekeeper, id: Uuid) -> Result<Option<KeyRecord>, ApiError> {
    let Some(key) = gk
        .store
        .revoke_key(id, Utc::now())
        .await
        .or_unavailable("revoke_key")?
    else {
        return Ok(None);
    };
    if let Some(account) = &key.account {
        let n = gk
            .store
            .revoke_tokens_of(&Owner::Account(account.clone()), key.id)
            .await
            .or_unavailable("revoke_tokens")?;
        if n > 0 {
            log::info!("revoked {n} short-lived token(s) of key {}", key.key_prefix);
        }
    }
    Ok(Some(key))
}

/// Issues a key, enforcing the account plan's active-key cap atomically.
pub async fn issue(gk: &Gatekeeper, new: NewKey) -> Result<IssuedKey, ApiError> {
    let now = Utc::now();
    let name = check_name(&new.name)?;
    if let Some(exp) = new.expires_at {
        if exp <= now {
            return Err(ApiError::detail(
                ErrorKind::BadRequest,
                "expiresAt must be in the future",
            ));
        }
    }
    let plan_name = new
        .account
        .as_ref()
        .map(|a| a.plan.clone())
        .unwrap_or_default();
    let max_active = new
        .account
        .as_ref()
        .and_then(|a| gk.config.plans.get(&a.plan))
        .and_then(|p| p.max_active_keys);
    let token = gk.config.keys.generate();
    let record = KeyRecord {
        id: Uuid::new_v4(),
        hash: KeyHash::of(&token),
        account: new.account.as_ref().map(|a| a.id.clone()),
        plan: new.plan,
        name,
        key_prefix: gk.config.keys.display(&token),
        kind: new.kind,
        created_at: now,
        expires_at: new.expires_at,
        revoked_at: None,
    };
    let record = gk
        .store
        .insert_key(record, max_active, now)
        .await
        .map_err(|e| match e {
            StoreError::KeyLimit { max } => ApiError::new(ErrorKind::KeyLimit)
                .var("max", max.to_string())
                .var("plan", plan_name.clone())
                .details(json!({"maxActiveKeys": max, "plan": plan_name})),
            other => store_failure("insert_key", other),
        })?;
    metrics()
        .keys_issued
        .with_label_values(&[match record.kind {
            KeyKind::Standard => "standard",
            KeyKind::Trial => "trial",
            KeyKind::Public => "public",
        }])
        .inc();
    log::info!(
        "issued {:?} key {} ({}) for account {}",
        record.kind,
        record.key_prefix,
        record.id,
        record.account.as_deref().unwrap_or("-")
    );
    Ok(IssuedKey { record, token })
}
