//! Account-facing key management over the API, authenticated by one of the
//! account's own valid keys: create (`POST <path>`), list (`GET <path>`) and
//! revoke (`DELETE <path>/<id>`). Free of credits, rate-limited like any call,
//! refused (403) to plans without key management, such as a public demo key.
//! A created key never outlives the key that created it (see `child_expiry`).

use super::keys::NewKey;
use super::{body, unavailable};
use crate::gateway::context::{Principal, RequestCtx};
use crate::gateway::{Charge, Gateway};
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::routing::{Access, StoreFailure};
use crate::store::{rfc3339, KeyKind, KeyRecord};
use chrono::{DateTime, Utc};
use http::Method;
use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::IpAddr;
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

impl Gateway {
    fn envelope(&self, value: Value) -> Value {
        match self
            .config
            .self_service
            .as_ref()
            .and_then(|s| s.envelope.as_deref())
        {
            Some(name) => json!({ name: value }),
            None => value,
        }
    }

    /// Handles a self-service call; `rest` is the path after the endpoint.
    pub async fn self_service(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        method: &Method,
        rest: &str,
        client_ip: IpAddr,
    ) -> Result<Reply, ApiError> {
        let principal = self
            .principal(
                session,
                Access::Key,
                StoreFailure::FailClosed,
                ROUTE,
                client_ip,
            )
            .await?;
        let plan = self.plan_of(&principal)?;
        let Principal::Key(identity) = &principal else {
            return Err(ApiError::detail(ErrorKind::Forbidden, "a key is required"));
        };
        let account_id = match (&identity.key.account, identity.key.kind) {
            (Some(a), KeyKind::Standard) if plan.key_management => a.clone(),
            _ => {
                return Err(ApiError::detail(
                    ErrorKind::Forbidden,
                    "this key cannot manage API keys; use your own account's key",
                ))
            }
        };
        let (owner, bucket) = self.metering_target(&principal, &plan);
        ctx.plan = Some(plan.clone());
        let headers = self
            .admit(Charge::free(&plan, owner, bucket, ROUTE))
            .await?;
        // Recorded in the key's usage from here on: only admitted calls are.
        ctx.principal = Some(principal.clone());
        let now = Utc::now();
        let mut reply = match (method, rest) {
            (&Method::POST, "") => {
                let raw = body::read(session, self.config.server.max_body_bytes).await?;
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
                let account = self
                    .store
                    .account(&account_id)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| {
                        ApiError::detail(
                            ErrorKind::Forbidden,
                            "this key's account no longer exists",
                        )
                    })?;
                let issued = self
                    .issue_key(NewKey {
                        account: Some(account),
                        plan: None,
                        name: body.name,
                        expires_at: child_expiry(body.expires_at, identity.key.expires_at),
                        kind: KeyKind::Standard,
                    })
                    .await?;
                let mut v = view(&issued.record, now, None);
                let field = self
                    .config
                    .self_service
                    .as_ref()
                    .map(|s| s.key_field.clone())
                    .unwrap_or_else(|| "apiKey".into());
                v[field] = json!(issued.token);
                Reply::json(201, &self.envelope(v))
            }
            (&Method::GET, "") => {
                let keys = self
                    .store
                    .list_keys(&account_id)
                    .await
                    .map_err(unavailable)?;
                let mut out = Vec::with_capacity(keys.len());
                for k in &keys {
                    let usage = self.store.usage(k.id, 1, now).await.map_err(unavailable)?;
                    out.push(view(k, now, usage.last_used_at));
                }
                Reply::json(200, &self.envelope(Value::Array(out)))
            }
            (&Method::DELETE, id) if !id.is_empty() && !id.contains('/') => {
                let not_found = || ApiError::detail(ErrorKind::NotFound, "API key not found");
                let id = Uuid::parse_str(id).map_err(|_| not_found())?;
                let key = self
                    .store
                    .key(id)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(not_found)?;
                if key.account.as_deref() != Some(account_id.as_str()) {
                    return Err(not_found());
                }
                let key = self.revoke_key(id).await?.ok_or_else(not_found)?;
                log::info!("key {} ({}) revoked by its account", key.key_prefix, key.id);
                // The same lastUsedAt as the listing (revocation is idempotent,
                // so a failure here can be retried).
                let usage = self.store.usage(id, 1, now).await.map_err(unavailable)?;
                Reply::json(200, &self.envelope(view(&key, now, usage.last_used_at)))
            }
            (_, "") => {
                return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", "GET, POST"))
            }
            (_, _) => {
                return Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", "DELETE"))
            }
        };
        reply.headers = headers;
        Ok(reply)
    }
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
