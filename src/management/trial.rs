//! The public trial endpoint: issues a short-term key with no account, behind
//! human verification with a siteverify API shaped like Cloudflare Turnstile's
//! (form `secret`, `response`, `remoteip`; JSON `{"success": bool,
//! "error-codes": [...]}`) unless the profile says `verification = "off"`, and
//! optionally capped per client IP (only successful issuances count).

use super::body;
use super::keys::{self, check_name, NewKey};
use crate::config::VerificationSettings;
use crate::gatekeeper::{Charge, Gatekeeper};
use crate::metering::{Bucket, Owner};
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::store::KeyKind;
use chrono::Utc;
use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::net::IpAddr;
use tokio::sync::{Semaphore, SemaphorePermit};

#[derive(Deserialize)]
struct SiteverifyAnswer {
    success: bool,
    #[serde(default, rename = "error-codes")]
    error_codes: Vec<String>,
}

/// Verifications in flight at once, per process: the trial endpoint has no
/// per-IP limit (its document allows none), so this bounds the outbound calls
/// a flood of trial requests can start.
pub const MAX_VERIFICATIONS: usize = 64;

static VERIFICATIONS: Semaphore = Semaphore::const_new(MAX_VERIFICATIONS);

/// A place among the verifications in flight, or a 503 when all are taken.
fn verification_slot(slots: &Semaphore) -> Result<SemaphorePermit<'_>, ApiError> {
    slots.try_acquire().map_err(|_| {
        log::debug!("human verification busy: {MAX_VERIFICATIONS} in flight");
        ApiError::detail(
            ErrorKind::Unavailable,
            "human verification is busy; retry shortly",
        )
        .header("Retry-After", "1")
    })
}

/// Asks the siteverify API whether `response` is a human's.
pub async fn verify_human(
    http: &reqwest::Client,
    v: &VerificationSettings,
    response: &str,
    ip: IpAddr,
) -> Result<(), ApiError> {
    let _slot = verification_slot(&VERIFICATIONS)?;
    let ip = ip.to_string();
    let form = [
        ("secret", v.secret.as_str()),
        ("response", response),
        ("remoteip", ip.as_str()),
    ];
    let unavailable = |e: String| {
        log::warn!("human verification unavailable: {e}");
        ApiError::detail(
            ErrorKind::Unavailable,
            "human verification is unavailable; retry shortly",
        )
        .header("Retry-After", "5")
    };
    let answer: SiteverifyAnswer = http
        .post(&v.siteverify_url)
        .timeout(v.timeout)
        .form(&form)
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .json()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if answer.success {
        Ok(())
    } else {
        log::info!("human verification failed: {:?}", answer.error_codes);
        Err(ApiError::detail(
            ErrorKind::Forbidden,
            "human verification failed",
        ))
    }
}

/// Handles `POST <trial.path>`: a trial key for a verified human.
pub async fn issue(
    gk: &Gatekeeper,
    http: &reqwest::Client,
    session: &mut Session,
    ip: IpAddr,
) -> Result<Reply, ApiError> {
    let Some(trial) = &gk.config.trial else {
        return Err(ApiError::detail(ErrorKind::NotFound, "no trial endpoint"));
    };
    let raw = body::read(session, gk.config.server.max_body_bytes).await?;
    let fields: Map<String, Value> = body::parse(&raw)?;
    for key in fields.keys() {
        let known = key == "name" || trial.verification.as_ref().is_some_and(|v| &v.field == key);
        if !known {
            return Err(body::unknown_field(key));
        }
    }
    let name = match fields.get("name") {
        None | Some(Value::Null) => "trial".to_string(),
        Some(Value::String(s)) if s.trim().is_empty() => "trial".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(body::not_a_string("name", "field name must be a string")),
    };
    if let Some(v) = &trial.verification {
        let response = match fields.get(&v.field) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) | Some(Value::Null) | None => {
                return Err(body::missing_field(
                    &v.field,
                    format!(
                        "field {} (the human-verification token) is required",
                        v.field
                    ),
                ))
            }
            Some(_) => {
                return Err(body::not_a_string(
                    &v.field,
                    format!("field {} must be a string", v.field),
                ))
            }
        };
        verify_human(http, v, &response, ip).await?;
    }
    let name = check_name(&name)?;
    // Only a request that is about to be issued takes from the per-IP cap:
    // bad bodies and failed verification cost nothing, so nobody sharing
    // the address (a NAT, a proxy) can use the cap up for the others.
    let headers = match &trial.issuance {
        Some(cap) => {
            gk.admit(Charge::rate_only_fail_closed(
                cap,
                Owner::Client(gk.config.client_ip.bucket_key(ip)),
                Bucket::TrialIssuance,
                "trial",
            ))
            .await?
        }
        None => Vec::new(),
    };
    let ttl = chrono::Duration::from_std(trial.ttl).unwrap_or(chrono::Duration::days(7));
    let issued = keys::issue(
        gk,
        NewKey {
            account: None,
            plan: Some(trial.plan.name.clone()),
            name,
            expires_at: Some(Utc::now() + ttl),
            kind: KeyKind::Trial,
        },
    )
    .await?;
    let mut reply = Reply::json(201, &issued.to_json());
    reply.headers = headers;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifications_in_flight_are_bounded() {
        let slots = Semaphore::new(2);
        let a = verification_slot(&slots).expect("first");
        let _b = verification_slot(&slots).expect("second");
        let busy = verification_slot(&slots).expect_err("third");
        assert_eq!(busy.kind, ErrorKind::Unavailable);
        assert!(busy
            .headers
            .iter()
            .any(|(k, v)| k == "Retry-After" && v == "1"));
        drop(a);
        assert!(verification_slot(&slots).is_ok());
    }
}
