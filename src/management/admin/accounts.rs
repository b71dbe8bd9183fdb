//! Accounts in the admin API: create (with starting credits), show (with the
//! credit balance and active keys), and credit changes within the bound.

use super::{account, read_body};
use crate::gatekeeper::{store_failure, Gatekeeper, OrUnavailable};
use crate::management::body;
use crate::metering::credits::{within_bound, CreditCharge, MAX_CREDITS};
use crate::metering::plan::CreditPool;
use crate::metering::{Owner, Plan};
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::store::Account;
use chrono::Utc;
use pingora::protocols::http::ServerSession;
use serde::Deserialize;
use serde_json::json;

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

/// Checks a new account's starting credits against its plan.
fn check_starting_credits(
    plan: &str,
    target: Option<&(Owner, CreditCharge, CreditPool)>,
    credits: i64,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let bad = |msg: String| Err(ApiError::detail(ErrorKind::BadRequest, msg));
    match target {
        None => bad(format!(
            "field credits: plan {plan:?} does not meter credits"
        )),
        Some((_, _, CreditPool::Plan)) => bad(format!(
            "field credits: plan {plan:?} draws from one pooled balance, not per account"
        )),
        Some(_) if credits < 0 => bad("field credits: must not be negative".into()),
        Some((_, charge, _)) => {
            let start = charge.current(None, now.timestamp_millis()).balance;
            check_credit_balance("credits", start, credits)
        }
    }
}

/// `POST /v1/accounts`.
pub async fn create(gw: &Gatekeeper, session: &mut ServerSession) -> Result<Reply, ApiError> {
    let now = Utc::now();
    let body: CreateAccount = body::parse(&read_body(gw, session).await?)?;
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
        check_starting_credits(&body.plan, credit_target.as_ref(), n, now)?;
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
            other => store_failure("admin", other),
        })?;
    let mut view = account.to_json();
    if let Some((owner, charge, _)) = credit_target {
        let balance = match body.credits {
            Some(n) if n > 0 => gw.store.add_credits(&owner, n, &charge).await,
            _ => gw.store.credit_balance(&owner, &charge).await,
        }
        .or_unavailable("admin")?;
        view["credits"] = json!(balance);
    }
    Ok(Reply::json(201, &view))
}

/// `POST /v1/accounts/{id}/credits`.
pub async fn add_credits(
    gw: &Gatekeeper,
    session: &mut ServerSession,
    id: &str,
) -> Result<Reply, ApiError> {
    let body: AddCredits = body::parse(&read_body(gw, session).await?)?;
    let account = account(gw, id).await?;
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
                    .unwrap_or_else(|| store_failure("admin", e))
            }
            other => store_failure("admin", other),
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

/// `GET /v1/accounts/{id}`.
pub async fn show(gw: &Gatekeeper, id: &str) -> Result<Reply, ApiError> {
    let now = Utc::now();
    let account = account(gw, id).await?;
    let keys = gw.store.list_keys(id).await.or_unavailable("admin")?;
    let mut view = account.to_json();
    view["activeKeys"] = json!(keys.iter().filter(|k| k.is_active(now)).count());
    let plan = gw.config.plans.get(&account.plan);
    view["maxActiveKeys"] = json!(plan.and_then(|p| p.max_active_keys));
    if let Some((owner, charge, pool)) = plan.and_then(|p| credit_owner(&account, p)) {
        let balance = gw
            .store
            .credit_balance(&owner, &charge)
            .await
            .or_unavailable("admin")?;
        view["credits"] = json!(balance);
        view["creditPool"] = json!(match pool {
            CreditPool::Account => "account",
            CreditPool::Plan => "plan",
        });
    }
    Ok(Reply::json(200, &view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids() {
        assert!(check_account_id("acme-prod_1.x").is_ok());
        assert!(check_account_id("").is_err());
        assert!(check_account_id("a b").is_err());
        assert!(check_account_id(&"a".repeat(65)).is_err());
    }
}
