//! Rate-limit response headers: `Retry-After`, `X-RateLimit-*`, and the IETF
//! draft's `RateLimit-Policy` / `RateLimit` structured fields.

use super::{AdmitOutcome, Plan, Verdict};
use std::time::Duration;

/// Whole seconds, rounded up.
pub fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s + 1
    } else {
        s
    }
}

/// The headers for an outcome under a plan.
pub fn rate_limit_headers(plan: &Plan, outcome: &AdmitOutcome) -> Vec<(String, String)> {
    let reset = ceil_secs(outcome.reset_after);
    let mut out = vec![
        ("X-RateLimit-Limit".to_string(), plan.rate.to_string()),
        (
            "X-RateLimit-Remaining".to_string(),
            outcome.remaining.to_string(),
        ),
        ("X-RateLimit-Reset".to_string(), reset.to_string()),
        (
            "RateLimit-Policy".to_string(),
            format!(
                "\"{}\";q={};w={}",
                plan.name,
                plan.rate,
                plan.window.as_secs().max(1)
            ),
        ),
    ];
    let limited = outcome.verdict == Verdict::RateLimited;
    let t = if limited {
        ceil_secs(outcome.retry_after).max(1)
    } else {
        reset
    };
    out.push((
        "RateLimit".to_string(),
        format!("\"{}\";r={};t={}", plan.name, outcome.remaining, t),
    ));
    if limited {
        out.push((
            "Retry-After".to_string(),
            ceil_secs(outcome.retry_after).max(1).to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_headers() {
        let plan = Plan::simple("anonymous", 10, Duration::from_secs(60), 10);
        let o = AdmitOutcome {
            verdict: Verdict::RateLimited,
            remaining: 0,
            retry_after: Duration::from_millis(5_500),
            reset_after: Duration::from_secs(60),
            credits: None,
            credits_refill_in: None,
            token_remaining: None,
        };
        let h = rate_limit_headers(&plan, &o);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("Retry-After"), Some("6"));
        assert_eq!(get("X-RateLimit-Limit"), Some("10"));
        assert_eq!(get("X-RateLimit-Remaining"), Some("0"));
        assert_eq!(get("RateLimit-Policy"), Some("\"anonymous\";q=10;w=60"));
        assert_eq!(get("RateLimit"), Some("\"anonymous\";r=0;t=6"));
    }
}
