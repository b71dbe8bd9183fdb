//! Admission: which bucket and balance a principal draws from, one atomic store
//! call, and the headers and refusals that follow from its outcome.

use super::failure::{degraded, store_failure};
use super::principal::{unauthorized_because, Principal};
use super::Gatekeeper;
use crate::auth::jwt::TokenClaims;
use crate::config::duration::window_label;
use crate::metering::credits::CreditCharge;
use crate::metering::headers::{ceil_secs, rate_limit_headers};
use crate::metering::plan::CreditPool;
use crate::metering::{Admission, AdmitOutcome, Bucket, Owner, Plan, Verdict};
use crate::metrics::metrics;
use crate::reply::{ApiError, ErrorKind};
use crate::routing::StoreFailure;
use crate::store::Meter;
use serde_json::json;
use std::sync::Arc;

/// Header carrying the caller's credit balance after the request.
pub const CREDITS_HEADER: &str = "X-Credits-Remaining";
/// Header carrying a short-lived token's remaining requests.
pub const TOKEN_HEADER: &str = "X-Token-Requests-Remaining";

/// What one admission draws on.
pub struct Charge<'a> {
    pub plan: &'a Arc<Plan>,
    /// Hash tag and credit holder (see [`Gatekeeper::metering_target`]).
    pub owner: Owner,
    pub bucket: Bucket,
    /// Credits.
    pub cost: u64,
    /// The short-lived token whose request limit applies.
    pub token: Option<&'a TokenClaims>,
    pub policy: StoreFailure,
    /// For metrics.
    pub route: &'a str,
}

impl<'a> Charge<'a> {
    /// The rate limit only: no credits, no token, failing closed while the
    /// store is unreachable (tollgate's own endpoints).
    pub fn rate_only_fail_closed(
        plan: &'a Arc<Plan>,
        owner: Owner,
        bucket: Bucket,
        route: &'a str,
    ) -> Self {
        Self {
            plan,
            owner,
            bucket,
            cost: 0,
            token: None,
            policy: StoreFailure::FailClosed,
            route,
        }
    }
}

impl Gatekeeper {
    /// `(owner, bucket)`: the owner is the Cluster hash tag and the credit
    /// balance's holder; a shared plan pools everyone in one bucket.
    pub fn metering_target(&self, principal: &Principal, plan: &Plan) -> (Owner, Bucket) {
        match principal {
            Principal::Anonymous { ip } => (
                Owner::Client(self.config.client_ip.bucket_key(*ip)),
                Bucket::Client,
            ),
            Principal::Token(claims) => (
                Owner::Account(claims.sub.clone()),
                Bucket::AccountKey(claims.parent),
            ),
            Principal::Key(identity) => {
                let key = &identity.key;
                if plan.shared {
                    (Owner::Plan(plan.name.clone()), Bucket::Shared)
                } else if let Some(account) = &key.account {
                    (Owner::Account(account.clone()), Bucket::AccountKey(key.id))
                } else {
                    (Owner::Key(key.id), Bucket::OwnKey)
                }
            }
        }
    }

    /// Takes a token (and `cost` credits, and one of a short-lived token's
    /// requests) or refuses with 429 / 402 / 401; returns the headers for the
    /// response either way.
    pub async fn admit(&self, charge: Charge<'_>) -> Result<Vec<(String, String)>, ApiError> {
        let plan = charge.plan;
        let credits = plan
            .credits
            .as_ref()
            .filter(|_| charge.cost > 0)
            .map(|c| CreditCharge {
                cost: charge.cost,
                budget: c.budget,
                refill_ms: c
                    .refill
                    .map(|r| i64::try_from(r.as_millis()).unwrap_or(i64::MAX)),
            });
        debug_assert!(plan
            .credits
            .as_ref()
            .is_none_or(|c| c.pool == CreditPool::Account || plan.shared));
        let admission = Admission {
            owner: charge.owner.clone(),
            bucket: charge.bucket,
            interval_us: plan.interval_us(),
            burst: plan.burst,
            credits,
            token: charge.token.map(|t| t.jti),
        };
        let outcome = self.decide(&charge, admission).await?;
        outcome_reply(&charge, &outcome)
    }

    /// The store's decision, or, on a `fail_open` route while the store is
    /// unreachable, the per-instance limiter's (never for a short-lived token,
    /// whose revocation and limit live only in the store).
    async fn decide(
        &self,
        charge: &Charge<'_>,
        admission: Admission,
    ) -> Result<AdmitOutcome, ApiError> {
        match self.store.admit(&admission).await {
            Ok(o) => Ok(o),
            Err(e)
                if e.is_outage()
                    && charge.policy == StoreFailure::FailOpen
                    && charge.token.is_none() =>
            {
                log::debug!("store unreachable ({e}); local limiter decides");
                let o = self
                    .fallback
                    .admit(&Admission {
                        credits: None,
                        token: None,
                        ..admission
                    })
                    .await
                    .map_err(|e| store_failure("admit", e))?;
                let outcome = if o.verdict == Verdict::Allowed {
                    "local_allowed"
                } else {
                    "local_limited"
                };
                degraded(charge.route, outcome);
                Ok(o)
            }
            Err(e) => {
                degraded(charge.route, "fail_closed");
                Err(store_failure("admit", e))
            }
        }
    }
}

/// The 401 for a short-lived token the store no longer holds: expired if its
/// `exp` has passed (it may expire between verification and admission, and
/// the store drops it at expiry), revoked otherwise.
fn token_gone(token: Option<&TokenClaims>) -> ApiError {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    if token.is_some_and(|t| t.exp <= now) {
        unauthorized_because("short-lived token expired")
    } else {
        unauthorized_because("short-lived token revoked")
    }
}

/// The response headers of an admission, and its refusal if it refused.
fn outcome_reply(
    charge: &Charge<'_>,
    outcome: &AdmitOutcome,
) -> Result<Vec<(String, String)>, ApiError> {
    let plan = charge.plan;
    let mut headers = rate_limit_headers(plan, outcome);
    if let Some(balance) = outcome.credits {
        headers.push((CREDITS_HEADER.to_string(), balance.max(0).to_string()));
    }
    if let Some(left) = outcome.token_remaining {
        headers.push((TOKEN_HEADER.to_string(), left.max(0).to_string()));
    }
    let err = match outcome.verdict {
        Verdict::Allowed => return Ok(headers),
        Verdict::TokenRevoked => return Err(token_gone(charge.token)),
        Verdict::RateLimited => ApiError::new(ErrorKind::RateLimited)
            .var("limit", plan.rate.to_string())
            .var("window", window_label(plan.window)),
        Verdict::RequestLimitExhausted => {
            metrics()
                .short_lived_tokens
                .with_label_values(&["exhausted"])
                .inc();
            ApiError::new(ErrorKind::RequestLimit).var(
                "limit",
                charge.token.map(|t| t.lim).unwrap_or(0).to_string(),
            )
        }
        Verdict::InsufficientCredits => {
            let balance = outcome.credits.unwrap_or(0).max(0);
            let mut details = json!({"balance": balance, "cost": charge.cost});
            if let Some(refill) = outcome.credits_refill_in {
                let secs = ceil_secs(refill).max(1);
                details["refillsInSeconds"] = json!(secs);
                headers.push(("Retry-After".to_string(), secs.to_string()));
            }
            ApiError::new(ErrorKind::InsufficientCredits)
                .var("balance", balance.to_string())
                .var("cost", charge.cost.to_string())
                .details(details)
        }
    };
    let mut err = err;
    err.headers = headers;
    Err(err)
}
