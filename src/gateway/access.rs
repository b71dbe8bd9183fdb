//! The access log line of one request, from what the pipeline recorded in its
//! context (see [`crate::access_log`] for the queue and the writer).

use super::context::{Decision, RequestCtx};
use crate::access_log::{AccessLog, Entry, Fields, Party};
use crate::gatekeeper::Principal;
use pingora::proxy::Session;
use std::borrow::Cow;
use std::time::Duration;

/// Whether a request is logged whatever the sampling rate: everything but
/// admitted and forwarded requests that got an answer below 500.
fn always_logged(decision: Decision, status: u16) -> bool {
    match decision {
        Decision::Public | Decision::Admitted | Decision::Preflight => status == 0 || status >= 500,
        Decision::Managed | Decision::Rejected(_) | Decision::Pending => true,
    }
}

/// Account, key id, key prefix and plan: of the admitted principal, or of the
/// caller a refusal was given to.
fn caller(ctx: &RequestCtx) -> (Option<&str>, Option<uuid::Uuid>, Option<&str>, Option<&str>) {
    let plan = ctx.plan.as_ref().map(|p| p.name.as_str());
    match (&ctx.principal, &ctx.caller) {
        (Some(Principal::Key(identity)), _) => (
            identity.key.account.as_deref(),
            Some(identity.key.id),
            Some(identity.key.key_prefix.as_str()),
            plan.or(Some(identity.plan.as_str())),
        ),
        (Some(Principal::Token(claims)), _) => (
            Some(claims.sub.as_str()),
            Some(claims.parent),
            None,
            plan.or(Some(claims.plan.as_str())),
        ),
        (Some(Principal::Anonymous { .. }), _) => (None, None, None, plan),
        (None, Some(c)) => (
            c.account.as_deref(),
            c.key_id,
            c.key_prefix.as_deref(),
            plan.or(c.plan.as_deref()),
        ),
        (None, None) => (None, None, None, plan),
    }
}

/// The canonical path: the one the pipeline kept, or, for a request refused
/// before it was put back (a bad credential), the request's own normalised
/// again; a path that does not normalise is logged without its query.
fn path<'a>(ctx: &'a RequestCtx, session: &'a Session) -> Cow<'a, str> {
    if let Some(p) = &ctx.path {
        return Cow::Borrowed(p.canonical.as_str());
    }
    let req = session.req_header();
    match crate::routing::normalize(req.raw_path()) {
        Ok(p) => Cow::Owned(p.canonical),
        Err(_) => Cow::Borrowed(req.uri.path()),
    }
}

/// Queues the request's line, unless sampling leaves it out.
pub(super) fn record(
    log: &AccessLog,
    session: &Session,
    ctx: &RequestCtx,
    status: u16,
    elapsed: Duration,
) {
    if !log.keeps(always_logged(ctx.decision, status)) {
        return;
    }
    let path = path(ctx, session);
    let (account, key_id, key_prefix, plan) = caller(ctx);
    let route = ctx.route.as_ref().map(|r| r.name.as_str()).or(ctx.endpoint);
    let started = chrono::Utc::now()
        - chrono::Duration::from_std(elapsed).unwrap_or_else(|_| chrono::Duration::zero());
    let entry = Entry::new(Fields {
        started: Some(started),
        request_id: &ctx.request_id,
        method: session.req_header().method.as_str(),
        route,
        path: Some(&path),
        status,
        decision: ctx.decision.label(),
        reason: ctx.decision.reason(),
        party: Party {
            account,
            key_id,
            key_prefix,
            plan,
            client_ip: ctx.client_ip,
            cost: ctx.cost,
            credits_remaining: ctx.credits_remaining,
            bytes_sent: Some(session.body_bytes_sent()),
        },
        duration: elapsed,
        upstream: ctx.upstream_elapsed,
    });
    log.push(&entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_successful_forwarded_requests_are_sampled() {
        for d in [Decision::Public, Decision::Admitted, Decision::Preflight] {
            assert!(!always_logged(d, 200));
            assert!(!always_logged(d, 404));
            assert!(always_logged(d, 502));
            assert!(always_logged(d, 0));
        }
        for d in [
            Decision::Managed,
            Decision::Rejected("rate_limited"),
            Decision::Pending,
        ] {
            assert!(always_logged(d, 200));
        }
    }
}
