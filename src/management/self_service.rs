//! Account-facing key management over the API, authenticated by one of the
//! account's own valid keys: create (`POST <path>`), list (`GET <path>`) and
//! revoke (`DELETE <path>/<id>`). Free of credits, rate-limited like any call,
//! refused (403) to plans without key management, such as a public demo key.
//! A created key never outlives the key that created it (see `child_expiry`).

use super::keys::{self, NewKey};
use super::{body, Call, Managed};
use crate::gatekeeper::{Charge, Gatekeeper, OrUnavailable, Principal};
use crate::metering::Plan;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::store::{rfc3339, Identity, KeyKind, KeyRecord};
use chrono::{DateTime, Utc};
use http::Method;
use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

/// The route name used in metrics for these endpoints.
const ROUTE: &str = "self_service";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    name: String,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// The expiry of a key created through these endpoints: never later than the
/// expiry of the key that creates it, so a key cannot outlive itself through a
/// child. No `expiresAt` inherits the creator's expiry; a later one is capped to
/// it (as a short-lived token's is); an earlier one is kept. The response's
/// `expiresAt` is the expiry applied.
fn child_expiry(
    asked: Option<DateTime<Utc>>,
    creator: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (asked, creator) {
        (Some(asked), Some(creator)) => Some(asked.min(creator)),
        (None, creator) => creator,
        (asked, None) => asked,
    }
}

fn view(k: &KeyRecord, now: DateTime<Utc>, last_used: Option<DateTime<Utc>>) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "keyPrefix": k.key_prefix,
        "isActive": k.is_active(now),
        "expiresAt": k.expires_at.as_ref().map(rfc3339),
        "lastUsedAt": last_used.as_ref().map(rfc3339),
        "createdAt": rfc3339(&k.created_at),
    })
}

/// The self-service settings' envelope around a response body, if any.
fn envelope(gk: &Gatekeeper, value: Value) -> Value {
    match gk
        .config
        .self_service
        .as_ref()
        .and_then(|s| s.envelope.as_deref())
    {
        Some(name) => json!({ name: value }),
        None => value,
    }
}

/// The account a key may manage keys for: its own, on a plan with key
/// management, from a standard (not trial, not public) key.
fn managing_account(principal: &Principal, plan: &Plan) -> Result<(Identity, String), ApiError> {
    let Principal::Key(identity) = principal else {
        return Err(ApiError::detail(ErrorKind::Forbidden, "a key is required"));
    };
    match (&identity.key.account, identity.key.kind) {
        (Some(a), KeyKind::Standard) if plan.key_management => {
            Ok((identity.as_ref().clone(), a.clone()))
        }
        _ => Err(ApiError::detail(
            ErrorKind::Forbidden,
            "this key cannot manage API keys; use your own account's key",
        )),
    }
}

/// Handles a self-service call; `rest` is the path after the endpoint.
pub async fn handle(
    gk: &Gatekeeper,
    session: &mut Session,
    call: Call<'_>,
    rest: &str,
) -> Result<Managed, ApiError> {
    let (principal, plan) = gk
        .key_caller(&session.req_header().headers, ROUTE, call.client_ip)
        .await?;
    let (identity, account) = managing_account(&principal, &plan)?;
    let (owner, bucket) = gk.metering_target(&principal, &plan);
    let rate_headers = gk
        .admit(Charge::rate_only_fail_closed(&plan, owner, bucket, ROUTE))
        .await?;
    let mut reply = match (call.method, rest) {
        (&Method::POST, "") => create(gk, session, &plan, &identity, &account).await?,
        (&Method::GET, "") => list(gk, &account).await?,
        (&Method::DELETE, id) if !id.is_empty() && !id.contains('/') => {
            revoke(gk, &account, id).await?
        }
        (_, "") => {
            return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", "GET, POST"))
        }
        (_, _) => return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", "DELETE")),
    };
    reply.headers = rate_headers;
    Ok(Managed {
        reply,
        admitted: Some((principal, plan)),
    })
}

/// `POST <path>`: a new key for the caller's account.
async fn create(
    gk: &Gatekeeper,
    session: &mut Session,
    plan: &Arc<Plan>,
    creator: &Identity,
    account_id: &str,
) -> Result<Reply, ApiError> {
    let raw = body::read(session, gk.config.server.max_body_bytes).await?;
    let body: CreateBody = body::parse(&raw)?;
    if body.expires_at.is_some() && !plan.custom_expiry {
        return Err(ApiError::detail(
            ErrorKind::Forbidden,
            format!(
                "custom key expiration (expiresAt) is not available on the {} plan",
                plan.name
            ),
        ));
    }
    let account = gk
        .store
        .account(account_id)
        .await
        .or_unavailable("account")?
        .ok_or_else(|| {
            ApiError::detail(ErrorKind::Forbidden, "this key's account no longer exists")
        })?;
    let issued = keys::issue(
        gk,
        NewKey {
            account: Some(account),
            plan: None,
            name: body.name,
            expires_at: child_expiry(body.expires_at, creator.key.expires_at),
            kind: KeyKind::Standard,
        },
    )
    .await?;
    let mut v = view(&issued.record, Utc::now(), None);
    let field = gk
        .config
        .self_service
        .as_ref()
        .map(|s| s.key_field.clone())
        .unwrap_or_else(|| "apiKey".into());
    v[field] = json!(issued.token);
    Ok(Reply::json(201, &envelope(gk, v)))
}

/// `GET <path>`: every key of the caller's account, with `lastUsedAt`.
async fn list(gk: &Gatekeeper, account_id: &str) -> Result<Reply, ApiError> {
    let now = Utc::now();
    let keys = gk
        .store
        .list_keys(account_id)
        .await
        .or_unavailable("list_keys")?;
    let mut out = Vec::with_capacity(keys.len());
    for k in &keys {
        let usage = gk.store.usage(k.id, 1, now).await.or_unavailable("usage")?;
        out.push(view(k, now, usage.last_used_at));
    }
    Ok(Reply::json(200, &envelope(gk, Value::Array(out))))
}

/// `DELETE <path>/<id>`: revokes one of the caller's account's keys.
async fn revoke(gk: &Gatekeeper, account_id: &str, id: &str) -> Result<Reply, ApiError> {
    let now = Utc::now();
    let not_found = || ApiError::detail(ErrorKind::NotFound, "API key not found");
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let key = gk
        .store
        .key(id)
        .await
        .or_unavailable("key")?
        .ok_or_else(not_found)?;
    if key.account.as_deref() != Some(account_id) {
        return Err(not_found());
    }
    let key = keys::revoke(gk, id).await?.ok_or_else(not_found)?;
    log::info!("key {} ({}) revoked by its account", key.key_prefix, key.id);
    // The same lastUsedAt as the listing (revocation is idempotent, so a
    // failure here can be retried).
    let usage = gk.store.usage(id, 1, now).await.or_unavailable("usage")?;
    Ok(Reply::json(
        200,
        &envelope(gk, view(&key, now, usage.last_used_at)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_child_key_never_outlives_its_creator() {
        let now = Utc::now();
        let creator = now + Duration::days(7);
        // No expiresAt: the creator's expiry.
        assert_eq!(child_expiry(None, Some(creator)), Some(creator));
        // A later one: capped to the creator's.
        assert_eq!(
            child_expiry(Some(now + Duration::days(365)), Some(creator)),
            Some(creator)
        );
        // An earlier one: kept.
        let sooner = now + Duration::days(1);
        assert_eq!(child_expiry(Some(sooner), Some(creator)), Some(sooner));
        // A creator without expiry leaves the child's choice alone.
        assert_eq!(child_expiry(Some(sooner), None), Some(sooner));
        assert_eq!(child_expiry(None, None), None);
    }
}
