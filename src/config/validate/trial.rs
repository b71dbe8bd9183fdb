//! `[trial]`: public trial-key issuance, its optional issuance cap, and its
//! required human verification (a `[trial.verification]` table or `"off"`).

use super::plans::find_plan;
use super::Issues;
use crate::config::model::{TrialSettings, VerificationSettings};
use crate::config::schema::{TrialSection, VerificationChoice, VerificationSection};
use crate::metering::Plan;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// `[trial]`; `None` (after reporting every issue) when its plan is undefined.
pub(super) fn compile_trial(
    is: &mut Issues,
    t: &TrialSection,
    plans: &BTreeMap<String, Arc<Plan>>,
) -> Option<TrialSettings> {
    if !t.path.starts_with('/') {
        is.add("trial.path", "must start with '/'");
    }
    let plan = find_plan(is, plans, "trial.plan", &t.plan);
    let ttl = is.duration("trial.ttl", &t.ttl);
    if ttl > Duration::from_secs(3650 * 86_400) {
        is.add("trial.ttl", "must be at most 3650d");
    }
    if t.issue_rate == Some(0) {
        is.add(
            "trial.issue_rate",
            "must be at least 1 (omit it for no cap)",
        );
    }
    let window = match &t.issue_window {
        Some(w) => is.duration("trial.issue_window", w),
        None => Duration::from_secs(3600),
    };
    if window > Duration::from_secs(366 * 86_400) {
        is.add("trial.issue_window", "must be at most 366d");
    }
    if t.issue_window.is_some() && t.issue_rate.is_none() {
        is.add(
            "trial.issue_window",
            "is set, but issue_rate is not: without issue_rate there is no cap (set both, or neither)",
        );
    }
    let verification = compile_verification(is, t.verification.as_ref());
    Some(TrialSettings {
        path: t.path.clone(),
        plan: plan?,
        ttl,
        issuance: t.issue_rate.map(|rate| {
            Arc::new(Plan::simple(
                "trial-issuance",
                rate.max(1),
                window,
                rate.max(1),
            ))
        }),
        verification,
    })
}

/// `trial.verification`: required; `"off"` gives `None`.
fn compile_verification(
    is: &mut Issues,
    choice: Option<&VerificationChoice>,
) -> Option<VerificationSettings> {
    match choice {
        Some(VerificationChoice::Siteverify(v)) => Some(compile_siteverify(is, v)),
        Some(VerificationChoice::Off) => None,
        None => {
            is.add(
                "trial.verification",
                "is missing: trial keys would be issued without human verification; add a [trial.verification] table with a secret, or write verification = \"off\" under [trial] to issue them unverified",
            );
            None
        }
    }
}

/// `[trial.verification]`: the siteverify URL, its secret, field and timeout.
fn compile_siteverify(is: &mut Issues, v: &VerificationSection) -> VerificationSettings {
    if v.secret.trim().is_empty() {
        is.add(
            "trial.verification.secret",
            "must be set: without it trial keys would be issued without human verification; set the siteverify secret, or replace the [trial.verification] table with verification = \"off\" under [trial] to issue them unverified",
        );
    }
    if !(v.siteverify_url.starts_with("http://") || v.siteverify_url.starts_with("https://")) {
        is.add(
            "trial.verification.siteverify_url",
            "must be an http:// or https:// URL",
        );
    }
    if v.field.trim().is_empty() {
        is.add("trial.verification.field", "must not be empty");
    }
    VerificationSettings {
        siteverify_url: v.siteverify_url.clone(),
        secret: v.secret.clone(),
        field: v.field.clone(),
        timeout: is.duration("trial.verification.timeout", &v.timeout),
    }
}
