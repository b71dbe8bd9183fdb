//! Who is calling: the credential, resolved to a principal. A credential that is
//! present but bad is a 401, never a fallback to anonymous.

use super::failure::{degraded, store_failure};
use super::Gatekeeper;
use crate::auth::credential::{self, Credential, CredentialSource};
use crate::auth::jwt::TokenClaims;
use crate::auth::jwt::{looks_like_jwt, JwtError};
use crate::auth::keys::KeyHash;
use crate::metering::Plan;
use crate::reply::{ApiError, ErrorKind};
use crate::routing::{Access, StoreFailure};
use crate::store::{Identity, KeyKind, KeyRecord};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No credential, on an `anonymous` route: metered per client IP.
    Anonymous { ip: IpAddr },
    /// A long-lived key.
    Key(Box<Identity>),
    /// A short-lived token minted from a static key.
    Token(Box<TokenClaims>),
}

impl Principal {
    /// The long-lived key this principal's usage is recorded under.
    pub fn usage_key(&self) -> Option<uuid::Uuid> {
        match self {
            Principal::Anonymous { .. } => None,
            Principal::Key(identity) => Some(identity.key.id),
            Principal::Token(claims) => Some(claims.parent),
        }
    }
}

/// The reason every bad credential gets, unless a more useful one applies.
pub const BAD_CREDENTIAL: &str = "invalid, expired or revoked token";

/// The 401 every bad credential gets.
pub fn unauthorized() -> ApiError {
    unauthorized_because(BAD_CREDENTIAL)
}

/// A 401 with a specific reason (shown where the profile's message has `{detail}`).
pub fn unauthorized_because(detail: &str) -> ApiError {
    ApiError::detail(ErrorKind::Unauthorized, detail).header("WWW-Authenticate", "Bearer")
}

impl Gatekeeper {
    /// Resolves the caller for a route of `access` with store-failure `policy`.
    pub async fn principal(
        &self,
        headers: &HeaderMap,
        access: Access,
        policy: StoreFailure,
        route: &str,
        client_ip: IpAddr,
    ) -> Result<Principal, ApiError> {
        let cfg = &self.config;
        let cred = credential::extract(headers, &cfg.credentials).map_err(|e| {
            log::debug!("credential refused: {e}");
            unauthorized()
        })?;
        let Some(cred) = cred else {
            return match access {
                Access::Anonymous => Ok(Principal::Anonymous { ip: client_ip }),
                _ => Err(unauthorized_because("an API key is required")),
            };
        };
        let result = self.resolve_credential(&cred, policy, route).await;
        if matches!(&result, Err(e) if e.kind == ErrorKind::Unauthorized) {
            // Only a credential that was sent and failed counts, never a missing
            // one; and the throttle only ever answers for failed credentials, so
            // a flood of bad keys from an address (behind a CDN, everyone's)
            // never locks out a valid key from it.
            let client = cfg.client_ip.bucket_key(client_ip);
            let over = self.failures.blocked(&client);
            self.failures.failed(&client);
            if over {
                return Err(ApiError::new(ErrorKind::RateLimited)
                    .var("limit", self.failures.limit().to_string())
                    .var("window", "min")
                    .header("Retry-After", "60"));
            }
        }
        result
    }

    /// A credential that was sent: a JWT, a public key or a stored key.
    async fn resolve_credential(
        &self,
        cred: &Credential,
        policy: StoreFailure,
        route: &str,
    ) -> Result<Principal, ApiError> {
        let cfg = &self.config;
        if looks_like_jwt(&cred.token) {
            return self.short_lived_principal(cred);
        }
        if let Some(public) = cfg.public_keys.get(&cred.token) {
            return Ok(Principal::Key(Box::new(Identity {
                key: KeyRecord {
                    id: public.id,
                    hash: KeyHash::of(&cred.token),
                    account: Some(public.account.clone()),
                    plan: Some(public.plan.name.clone()),
                    name: public.name.clone(),
                    key_prefix: cfg.keys.display(&cred.token),
                    kind: KeyKind::Public,
                    created_at: DateTime::<Utc>::UNIX_EPOCH,
                    expires_at: None,
                    revoked_at: None,
                },
                plan: public.plan.name.clone(),
            })));
        }
        if !cfg.keys.matches(&cred.token) {
            return Err(unauthorized());
        }
        let hash = KeyHash::of(&cred.token);
        let identity = match self.store.resolve(&hash).await {
            Ok(found) => found,
            Err(e) if !e.is_outage() => return Err(store_failure("resolve", e)),
            Err(e) => match (policy, self.store.cached(&hash)) {
                (StoreFailure::FailOpen, Some(cached)) => {
                    degraded(route, "cached_key");
                    Some(cached)
                }
                (StoreFailure::FailOpen, None) => {
                    degraded(route, "unknown_key");
                    return Err(store_failure("resolve", e));
                }
                (StoreFailure::FailClosed, _) => {
                    degraded(route, "fail_closed");
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

    /// A short-lived token: only as `Authorization: Bearer`, verified in process.
    fn short_lived_principal(&self, cred: &Credential) -> Result<Principal, ApiError> {
        let Some(signer) = &self.signer else {
            return Err(unauthorized());
        };
        if cred.source != CredentialSource::Bearer {
            return Err(unauthorized_because(
                "short-lived tokens must be sent as Authorization: Bearer <token>, never in x-api-key",
            ));
        }
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        match signer.verify(&cred.token, now) {
            Ok(claims) => Ok(Principal::Token(Box::new(claims))),
            Err(JwtError::Expired) => Err(unauthorized_because("short-lived token expired")),
            Err(e) => {
                log::debug!("short-lived token refused: {e}");
                Err(unauthorized())
            }
        }
    }

    /// The caller of one of tollgate's own endpoints: a key is required, and
    /// a store outage fails closed. Returns the principal and its plan.
    pub async fn key_caller(
        &self,
        headers: &HeaderMap,
        route: &str,
        client_ip: IpAddr,
    ) -> Result<(Principal, Arc<Plan>), ApiError> {
        let principal = self
            .principal(
                headers,
                Access::Key,
                StoreFailure::FailClosed,
                route,
                client_ip,
            )
            .await?;
        let plan = self.plan_of(&principal)?;
        Ok((principal, plan))
    }

    /// The plan a principal is metered with.
    pub fn plan_of(&self, principal: &Principal) -> Result<Arc<Plan>, ApiError> {
        match principal {
            Principal::Anonymous { .. } => {
                self.config.anonymous_plan.clone().ok_or_else(unauthorized)
            }
            Principal::Token(t) => self.config.plans.get(&t.plan).cloned().ok_or_else(|| {
                ApiError::detail(ErrorKind::Forbidden, "this token's plan is not available")
            }),
            Principal::Key(identity) => {
                self.config
                    .plans
                    .get(&identity.plan)
                    .cloned()
                    .ok_or_else(|| {
                        log::warn!(
                            "key {} is on plan {:?}, which the config does not define",
                            identity.key.key_prefix,
                            identity.plan
                        );
                        ApiError::detail(ErrorKind::Forbidden, "this key's plan is not available")
                    })
            }
        }
    }
}
