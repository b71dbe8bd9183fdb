//! Who is calling: the credential, resolved to a principal. A credential that is
//! present but bad is a 401, never a fallback to anonymous.

use super::context::Principal;
use super::pipeline::{degraded, store_failure};
use super::Gateway;
use crate::auth::credential;
use crate::auth::keys::KeyHash;
use crate::metering::Plan;
use crate::reply::{ApiError, ErrorKind};
use crate::routing::{Access, StoreFailure};
use crate::store::{Identity, KeyKind, KeyRecord};
use chrono::{DateTime, Utc};
use pingora::proxy::Session;
use std::net::IpAddr;
use std::sync::Arc;

/// The 401 every bad credential gets.
pub(crate) fn unauthorized() -> ApiError {
    ApiError::new(ErrorKind::Unauthorized).header("WWW-Authenticate", "Bearer")
}

impl Gateway {
    /// Resolves the caller for a route of `access` with store-failure `policy`.
    pub(crate) async fn principal(
        &self,
        session: &Session,
        access: Access,
        policy: StoreFailure,
        route: &str,
        client_ip: IpAddr,
    ) -> Result<Principal, ApiError> {
        let cfg = &self.config;
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

    /// The plan a principal is metered with.
    pub(crate) fn plan_of(&self, principal: &Principal) -> Result<Arc<Plan>, ApiError> {
        match principal {
            Principal::Anonymous { .. } => {
                self.config.anonymous_plan.clone().ok_or_else(unauthorized)
            }
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
