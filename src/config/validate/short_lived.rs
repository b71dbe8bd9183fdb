//! `[short_lived]`: the short-lived token endpoints, their signing secrets,
//! expiry bounds, request limits and per-key creation rate.

use super::{is_literal_path, Issues};
use crate::config::model::{ResponseFields, ShortLivedSettings};
use crate::config::schema::ShortLivedSection;
use crate::metering::Plan;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// `[short_lived]`; with a `shared_store` the signing secret must be set.
pub(super) fn compile_short_lived(
    is: &mut Issues,
    s: &ShortLivedSection,
    shared_store: bool,
) -> ShortLivedSettings {
    check_paths(is, s);
    let secrets = compile_secrets(is, s, shared_store);
    let min = is.duration("short_lived.min_expires_in", &s.min_expires_in);
    let max = is.duration("short_lived.max_expires_in", &s.max_expires_in);
    if max > Duration::from_secs(30 * 86_400) {
        is.add(
            "short_lived.max_expires_in",
            "must be at most 30d: short-lived tokens are meant to be short",
        );
    }
    let default = is.duration("short_lived.default_expires_in", &s.default_expires_in);
    if !(min <= default && default <= max) {
        is.add(
            "short_lived.default_expires_in",
            "must lie between min_expires_in and max_expires_in",
        );
    }
    if s.max_count == 0 {
        is.add("short_lived.max_count", "must be at least 1");
    }
    if s.max_request_limit == 0 || !(1..=s.max_request_limit).contains(&s.default_request_limit) {
        is.add(
            "short_lived.default_request_limit",
            "must be between 1 and max_request_limit",
        );
    }
    if s.creation_rate == 0 {
        is.add("short_lived.creation_rate", "must be at least 1");
    }
    let window = is.duration("short_lived.creation_window", &s.creation_window);
    if window > Duration::from_secs(366 * 86_400) {
        is.add("short_lived.creation_window", "must be at most 366d");
    }
    let rate = s.creation_rate.max(1);
    ShortLivedSettings {
        tokens_path: s.tokens_path.clone(),
        inspect_path: s.inspect_path.clone(),
        issuer: s.issuer.clone(),
        signing_kid: s.signing_kid.clone(),
        secrets,
        min_expires_in: min,
        max_expires_in: max,
        default_expires_in: default,
        max_count: s.max_count,
        default_request_limit: s.default_request_limit,
        max_request_limit: s.max_request_limit,
        creation: Arc::new(Plan::simple("token-creation", rate, window, rate)),
        fields: ResponseFields {
            create: s.fields.create.clone(),
            list: s.fields.list.clone(),
            inspect: s.fields.inspect.clone(),
            delete: s.fields.delete.clone(),
        },
    }
}

/// The two endpoint paths: literal, and distinct.
fn check_paths(is: &mut Issues, s: &ShortLivedSection) {
    for (key, path) in [
        ("short_lived.tokens_path", &s.tokens_path),
        ("short_lived.inspect_path", &s.inspect_path),
    ] {
        if !is_literal_path(path) {
            is.add(
                key,
                "must be a literal path starting with '/' and not ending with '/'",
            );
        }
    }
    if s.tokens_path == s.inspect_path {
        is.add("short_lived.inspect_path", "must differ from tokens_path");
    }
}

/// `[[short_lived.secrets]]` as `(kid, secret)`: unique kids, secrets of at
/// least 32 bytes (empty: random per process, refused for the signing kid with
/// a shared store), and a `signing_kid` among them.
fn compile_secrets(
    is: &mut Issues,
    s: &ShortLivedSection,
    shared_store: bool,
) -> Vec<(String, String)> {
    let mut secrets = Vec::new();
    let mut kids = BTreeSet::new();
    for (i, sec) in s.secrets.iter().enumerate() {
        if sec.kid.is_empty() || !kids.insert(sec.kid.clone()) {
            is.add(
                format!("short_lived.secrets[{i}].kid"),
                "must be non-empty and unique",
            );
        }
        if sec.secret.is_empty() {
            if shared_store && sec.kid == s.signing_kid {
                is.add(
                    format!("short_lived.secrets[{i}].secret"),
                    "is empty: with a shared store every instance must sign with the same secret (set TOLLGATE_JWT_SECRET)",
                );
            }
        } else if sec.secret.len() < 32 {
            is.add(
                format!("short_lived.secrets[{i}].secret"),
                "must be at least 32 bytes",
            );
        }
        secrets.push((sec.kid.clone(), sec.secret.clone()));
    }
    if !s.secrets.iter().any(|sec| sec.kid == s.signing_kid) {
        is.add(
            "short_lived.signing_kid",
            format!("{:?} is not one of the secrets' kids", s.signing_kid),
        );
    }
    secrets
}
