//! `[cors]` and the `cors` key of routes and of tollgate's own endpoints:
//! allowed origins (`*`, exact, or wildcard subdomains), methods, request and
//! exposed headers, `max_age`, credentials, and `"inherit"` / `"off"` /
//! `"origin"` resolved against the global section.

use super::{split_list, Issues};
use crate::config::model::CorsSettings;
use crate::config::schema::{CorsChoice, CorsSection, FileConfig};
use crate::cors::{AllowedOrigins, Cors, CorsPolicy, CorsRules, OriginPattern};
use http::{HeaderName, Method};
use std::sync::Arc;
use std::time::Duration;

/// The longest `max_age` accepted (browsers cap it lower: Chromium at 2h).
const MAX_AGE_LIMIT: Duration = Duration::from_secs(86_400);

/// `[cors]` and the `cors` of the trial, short-lived and self-service
/// endpoints. Routes are compiled with [`compile_route_cors`]; `enabled`
/// covers these only until the routes are known.
pub(super) fn compile_cors(is: &mut Issues, file: &FileConfig) -> CorsSettings {
    let global = match &file.cors {
        Some(section) => Cors::Policy(Arc::new(compile_policy(is, "cors", section, None))),
        None => Cors::Off,
    };
    let endpoint = |is: &mut Issues, key: &str, choice: Option<&CorsChoice>| {
        if matches!(choice, Some(CorsChoice::Origin)) {
            is.add(
                key,
                "\"origin\" is for routes: tollgate answers this endpoint itself (use \"inherit\", \"off\" or a table)",
            );
            return Cors::Off;
        }
        compile_choice(is, key, choice, &global)
    };
    let trial = file
        .trial
        .as_ref()
        .map_or(Cors::Off, |t| endpoint(is, "trial.cors", t.cors.as_ref()));
    let short_lived = file.short_lived.as_ref().map_or(Cors::Off, |s| {
        endpoint(is, "short_lived.cors", s.cors.as_ref())
    });
    let self_service = file.self_service.as_ref().map_or(Cors::Off, |s| {
        endpoint(is, "self_service.cors", s.cors.as_ref())
    });
    let enabled = global.is_on() || trial.is_on() || short_lived.is_on() || self_service.is_on();
    CorsSettings {
        global,
        trial,
        short_lived,
        self_service,
        enabled,
    }
}

/// A route's `cors` at `{key}.cors` (`key` is `routes[i]`).
pub(super) fn compile_route_cors(
    is: &mut Issues,
    key: &str,
    choice: Option<&CorsChoice>,
    global: &Cors,
) -> Cors {
    compile_choice(is, &format!("{key}.cors"), choice, global)
}

/// `"inherit"` (or absent), `"off"`, `"origin"`, or a table over `global`.
fn compile_choice(is: &mut Issues, key: &str, choice: Option<&CorsChoice>, global: &Cors) -> Cors {
    match choice {
        None | Some(CorsChoice::Inherit) => global.clone(),
        Some(CorsChoice::Off) => Cors::Off,
        Some(CorsChoice::Origin) => Cors::Origin,
        Some(CorsChoice::Table(section)) => {
            let base = match global {
                Cors::Policy(p) => Some(&p.rules),
                _ => None,
            };
            Cors::Policy(Arc::new(compile_policy(is, key, section, base)))
        }
    }
}

/// One policy at `key`: `section`'s fields over `base` (the global rules),
/// or over the defaults when there is no global section.
fn compile_policy(
    is: &mut Issues,
    key: &str,
    section: &CorsSection,
    base: Option<&CorsRules>,
) -> CorsPolicy {
    let mut rules = base.cloned().unwrap_or_default();
    match &section.origins {
        Some(list) => rules.origins = compile_origins(is, &format!("{key}.origins"), list),
        None if base.is_none() => is.add(
            format!("{key}.origins"),
            match key {
                "cors" => "is required: list the origins allowed to call the API (e.g. [\"https://app.example.com\"], or [\"*\"])",
                _ => "is required: there is no [cors] section to inherit the allowed origins from",
            },
        ),
        None => {}
    }
    if let Some(methods) = &section.methods {
        rules.methods = compile_methods(is, &format!("{key}.methods"), methods);
    }
    if let Some(headers) = &section.allow_headers {
        rules.allow_headers = compile_header_names(is, &format!("{key}.allow_headers"), headers);
    }
    if let Some(headers) = &section.expose_headers {
        rules.expose_headers = compile_header_names(is, &format!("{key}.expose_headers"), headers);
    }
    if let Some(text) = &section.max_age {
        rules.max_age_secs = compile_max_age(is, &format!("{key}.max_age"), text);
    }
    if let Some(credentials) = section.credentials {
        rules.credentials = credentials;
    }
    if rules.credentials && rules.origins == AllowedOrigins::Any {
        is.add(
            format!("{key}.credentials"),
            "cannot be true with origins = [\"*\"]: browsers refuse a \"*\" origin on requests with credentials, and allowing every origin to send them would let any site act as its visitors; list the origins instead",
        );
    }
    CorsPolicy::new(rules)
}

/// `origins`: `["*"]` alone, or origin patterns; comma-separated entries
/// (from an environment variable) are split.
fn compile_origins(is: &mut Issues, key: &str, list: &[String]) -> AllowedOrigins {
    let entries = split_list(list);
    if entries.is_empty() {
        is.add(key, "must list at least one origin (or [\"*\"])");
        return AllowedOrigins::List(Vec::new());
    }
    if entries.iter().any(|e| e == "*") {
        if entries.len() > 1 {
            is.add(
                key,
                "\"*\" allows every origin: list it alone, or list origins without it",
            );
        }
        return AllowedOrigins::Any;
    }
    let mut patterns = Vec::new();
    for entry in &entries {
        match OriginPattern::parse(entry) {
            Ok(p) => patterns.push(p),
            Err(e) => is.add(key, e),
        }
    }
    AllowedOrigins::List(patterns)
}

/// `methods`: upper-case method names, at least one.
fn compile_methods(is: &mut Issues, key: &str, methods: &[String]) -> Vec<String> {
    if methods.is_empty() {
        is.add(key, "must list at least one method");
    }
    let mut out = Vec::new();
    for (j, m) in methods.iter().enumerate() {
        let upper = m.bytes().all(|b| b.is_ascii_uppercase());
        if upper && Method::from_bytes(m.as_bytes()).is_ok() {
            out.push(m.clone());
        } else {
            is.add(
                format!("{key}[{j}]"),
                format!(
                    "{m:?} is not an upper-case HTTP method (\"*\" is not accepted: list them)"
                ),
            );
        }
    }
    out
}

/// `allow_headers` / `expose_headers`: header names, spelled as written.
fn compile_header_names(is: &mut Issues, key: &str, names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (j, name) in names.iter().enumerate() {
        if name == "*" {
            is.add(
                format!("{key}[{j}]"),
                "\"*\" is not accepted: list the header names (a \"*\" never covers Authorization, and is a literal name on requests with credentials)",
            );
        } else if HeaderName::from_bytes(name.as_bytes()).is_err() {
            is.add(
                format!("{key}[{j}]"),
                format!("{name:?} is not a header name"),
            );
        } else {
            out.push(name.clone());
        }
    }
    out
}

/// `max_age`: whole seconds, 1s to 1d.
fn compile_max_age(is: &mut Issues, key: &str, text: &str) -> u64 {
    let age = is.duration(key, text);
    if age > MAX_AGE_LIMIT {
        is.add(
            key,
            "must be at most 1d (browsers cap it lower: Chromium at 2h)",
        );
    } else if age.as_secs() == 0 {
        is.add(key, "must be at least 1s");
    }
    age.as_secs()
}
