//! `[plans.NAME]` (rate, burst, credits, caps), the lookup of a plan by name,
//! the `[anonymous]` plan's constraint, and `[query]` (the query parameters
//! plan policies read).

use super::Issues;
use crate::config::model::QueryPolicy;
use crate::config::schema::{CreditsSection, PlanSection, QuerySection};
use crate::metering::credits::MAX_CREDITS;
use crate::metering::plan::{CreditPolicy, CreditPool};
use crate::metering::Plan;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Every `[plans.NAME]`, by name.
pub(super) fn compile_plans(
    is: &mut Issues,
    sections: &BTreeMap<String, PlanSection>,
) -> BTreeMap<String, Arc<Plan>> {
    let mut plans = BTreeMap::new();
    for (name, p) in sections {
        plans.insert(
            name.clone(),
            Arc::new(compile_plan(is, &format!("plans.{name}"), name, p)),
        );
    }
    plans
}

/// The plan called `name`, or an issue at `key` listing the defined ones.
pub(super) fn find_plan(
    is: &mut Issues,
    plans: &BTreeMap<String, Arc<Plan>>,
    key: &str,
    name: &str,
) -> Option<Arc<Plan>> {
    let found = plans.get(name).cloned();
    if found.is_none() {
        is.add(
            key,
            format!(
                "plan {name:?} is not defined (defined: {})",
                plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    found
}

/// Anonymous callers have no account, so their plan cannot meter credits.
pub(super) fn check_anonymous_plan(is: &mut Issues, plan: Option<&Plan>) {
    if let Some(plan) = plan {
        if plan.credits.is_some() {
            is.add(
                "anonymous.plan",
                format!(
                    "plan {:?} meters credits, but anonymous callers have no account to charge",
                    plan.name
                ),
            );
        }
    }
}

fn compile_plan(is: &mut Issues, key: &str, name: &str, p: &PlanSection) -> Plan {
    if p.rate == 0 {
        is.add(format!("{key}.rate"), "must be at least 1");
    }
    let window = is.duration(&format!("{key}.window"), &p.window);
    let burst = p.burst.unwrap_or(p.rate);
    if burst == 0 {
        is.add(format!("{key}.burst"), "must be at least 1");
    }
    if window > Duration::from_secs(366 * 86_400) {
        is.add(format!("{key}.window"), "must be at most 366d");
    }
    // The bucket's capacity in µs (window / rate × burst) must stay far from i64's range.
    let capacity_us = window.as_micros() / u128::from(p.rate.max(1)) * u128::from(burst);
    if capacity_us > 10u128.pow(15) {
        is.add(
            format!("{key}.burst"),
            "window / rate × burst is too large (above about 30 years)",
        );
    }
    if p.max_active_keys == Some(0) {
        is.add(
            format!("{key}.max_active_keys"),
            "must be at least 1 (omit it for no cap)",
        );
    }
    let credits = p
        .credits
        .as_ref()
        .map(|c| compile_credits(is, key, c, p.shared));
    if p.max_results == Some(0) {
        is.add(
            format!("{key}.max_results"),
            "must be at least 1 (omit it for no cap)",
        );
    }
    Plan {
        name: name.to_string(),
        rate: p.rate.max(1),
        window,
        burst: burst.max(1),
        max_active_keys: p.max_active_keys,
        credits,
        max_results: p.max_results,
        pagination: p.pagination,
        key_management: p.key_management,
        custom_expiry: p.custom_expiry,
        shared: p.shared,
        short_lived_tokens: p.short_lived_tokens,
    }
}

/// `[plans.NAME.credits]` of a plan at `key`, `shared` or not.
fn compile_credits(is: &mut Issues, key: &str, c: &CreditsSection, shared: bool) -> CreditPolicy {
    if c.budget == 0 {
        is.add(format!("{key}.credits.budget"), "must be at least 1");
    }
    if c.budget > MAX_CREDITS {
        is.add(
            format!("{key}.credits.budget"),
            format!("{} is above the largest credit amount, {MAX_CREDITS} (10^15): balances beyond it lose precision in the Redis scripts", c.budget),
        );
    }
    let pool = match c.pool.as_str() {
        "account" => CreditPool::Account,
        "plan" => CreditPool::Plan,
        other => {
            is.add(
                format!("{key}.credits.pool"),
                format!("{other:?} is not account or plan"),
            );
            CreditPool::Account
        }
    };
    if shared && pool == CreditPool::Account {
        is.add(
            format!("{key}.credits.pool"),
            "a shared plan pools its callers, so its credits cannot be per account: use pool = \"plan\"",
        );
    }
    if pool == CreditPool::Plan && !shared {
        is.add(
            format!("{key}.credits.pool"),
            "a pooled balance belongs to a shared plan (set shared = true), whose callers share one bucket too",
        );
    }
    if pool == CreditPool::Plan && c.refill.is_none() {
        is.add(
            format!("{key}.credits.refill"),
            "a pooled balance needs a refill period (nobody can top it up)",
        );
    }
    CreditPolicy {
        budget: c.budget,
        refill: c
            .refill
            .as_deref()
            .map(|r| is.duration(&format!("{key}.credits.refill"), r)),
        pool,
    }
}

/// `[query]`: the names plan policies read, matched case-insensitively.
pub(super) fn compile_query(is: &mut Issues, q: &QuerySection) -> QueryPolicy {
    if q.limit_param.is_empty() {
        is.add("query.limit_param", "must not be empty");
    }
    QueryPolicy {
        limit_param: q.limit_param.to_ascii_lowercase(),
        pagination_params: q
            .pagination_params
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect(),
    }
}
