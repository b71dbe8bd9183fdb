//! The metered routes (`[[routes]]`) as path patterns forwarded to the origin,
//! with the profile's credential schemes and the refusals each can get.

use super::errors::{admitted_headers, refusals, Refusal, CREDITS_HEADER, TOKEN_HEADER};
use super::{path_param, Paths};
use crate::config::Config;
use crate::routing::{Access, Route};
use serde_json::{json, Map, Value};

/// Methods listed for a route that accepts every method.
const EVERY_METHOD: [&str; 6] = ["get", "head", "post", "put", "patch", "delete"];

/// Methods an OpenAPI path item can hold.
const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `components.securitySchemes`: the admin token and the credential forms
/// the profile accepts.
pub fn security_schemes(cfg: &Config) -> Value {
    let mut out = Map::new();
    if cfg.admin.is_some() {
        out.insert("adminToken".into(), json!({"type": "http", "scheme": "bearer", "description": "the admin token ([admin] token)"}));
    }
    let what = match cfg.short_lived {
        Some(_) => format!(
            "an API key ({}…) or a short-lived token (a JWT)",
            cfg.keys.prefix
        ),
        None => format!("an API key ({}…)", cfg.keys.prefix),
    };
    let c = &cfg.credentials;
    if c.bearer {
        out.insert("bearer".into(), json!({"type": "http", "scheme": "bearer", "description": format!("Authorization: Bearer <credential>: {what}")}));
    }
    if c.raw_authorization {
        out.insert("rawAuthorization".into(), json!({"type": "apiKey", "in": "header", "name": "Authorization", "description": format!("Authorization: <credential>, without a scheme: {what}")}));
    }
    if c.x_api_key {
        out.insert("apiKeyHeader".into(), json!({"type": "apiKey", "in": "header", "name": "x-api-key", "description": format!("x-api-key: <credential>: {what}")}));
    }
    Value::Object(out)
}

/// The alternatives of a call that needs a credential: any one accepted form.
pub fn key_security(cfg: &Config) -> Value {
    let c = &cfg.credentials;
    let forms = [
        (c.bearer, "bearer"),
        (c.raw_authorization, "rawAuthorization"),
        (c.x_api_key, "apiKeyHeader"),
    ];
    forms
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| json!({ *name: [] }))
        .collect()
}

/// Adds every route's patterns and methods (the first route of a path and
/// method wins, as in the route table).
pub fn add(paths: &mut Paths, cfg: &Config) {
    for route in cfg.routes.routes() {
        for (i, pattern) in route.patterns.iter().enumerate() {
            let (path, params) = openapi_path(pattern.text());
            let methods: Vec<String> = if route.methods.is_empty() {
                EVERY_METHOD.iter().map(|m| m.to_string()).collect()
            } else {
                route
                    .methods
                    .iter()
                    .map(|m| m.as_str().to_ascii_lowercase())
                    .collect()
            };
            for method in methods
                .iter()
                .filter(|m| OPENAPI_METHODS.contains(&m.as_str()))
            {
                let mut op = operation(cfg, route, method, i);
                if !params.is_empty() {
                    op["parameters"] = Value::Array(params.clone());
                }
                paths.add(&path, method, op);
            }
        }
    }
}

/// `/a/{b}/*` as an OpenAPI path (`/a/{b}/{path}`) and its parameters.
fn openapi_path(pattern: &str) -> (String, Vec<Value>) {
    let mut params = Vec::new();
    let mut segments = Vec::new();
    for seg in pattern.split('/').filter(|s| !s.is_empty()) {
        if seg == "*" {
            segments.push("{path}".to_string());
            params.push(path_param(
                "path",
                "the rest of the path: one or more segments, '/' included",
                json!({"type": "string"}),
            ));
        } else if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            segments.push(seg.to_string());
            params.push(path_param(
                name,
                "a path segment",
                json!({"type": "string"}),
            ));
        } else {
            segments.push(seg.to_string());
        }
    }
    (format!("/{}", segments.join("/")), params)
}

/// Whether a call of `route` can be refused for credits: it costs some and
/// a plan allowed on it meters credits.
fn charges_credits(cfg: &Config, route: &Route) -> bool {
    route.cost > 0
        && cfg
            .plans
            .values()
            .filter(|p| route.plans.is_empty() || route.plans.contains(&p.name))
            .any(|p| p.credits.is_some())
}

fn operation(cfg: &Config, route: &Route, method: &str, pattern: usize) -> Value {
    let (security, which) = match route.access {
        Access::Public => (
            json!([]),
            vec![
                Refusal::BadRequest,
                Refusal::HeadersTooLarge,
                Refusal::BadGateway,
            ],
        ),
        access => {
            let mut security = key_security(cfg);
            if access == Access::Anonymous {
                if let Value::Array(alternatives) = &mut security {
                    alternatives.push(json!({}));
                }
            }
            (security, metered_refusals(cfg, route))
        }
    };
    let mut extra = Vec::new();
    if route.access != Access::Public && charges_credits(cfg, route) {
        extra.push(CREDITS_HEADER);
    }
    if route.access != Access::Public && cfg.short_lived.is_some() {
        extra.push(TOKEN_HEADER);
    }
    let headers = match route.access {
        Access::Public => json!({}),
        _ => admitted_headers(&extra),
    };
    let mut responses = refusals(cfg, &which);
    responses.insert(
        "default".into(),
        json!({"description": "the origin's response", "headers": headers}),
    );
    json!({
        "tags": ["routes"],
        "operationId": format!("route_{}_{}_{}", route.name, pattern, method),
        "summary": summary(route),
        "security": security,
        "responses": responses,
    })
}

fn metered_refusals(cfg: &Config, route: &Route) -> Vec<Refusal> {
    let mut which = vec![Refusal::BadRequest, Refusal::Unauthorized];
    if charges_credits(cfg, route) {
        which.push(Refusal::PaymentRequired);
    }
    which.push(Refusal::Forbidden);
    if !route.methods.is_empty() {
        which.push(Refusal::MethodNotAllowed);
    }
    which.extend([
        Refusal::TooManyRequests,
        Refusal::HeadersTooLarge,
        Refusal::Internal,
        Refusal::BadGateway,
        Refusal::Unavailable,
    ]);
    which
}

fn summary(route: &Route) -> String {
    let access = match route.access {
        Access::Public => "public: no credential read, nothing metered",
        Access::Anonymous => "a credential is optional; without one, metered per client IP",
        Access::Key => "a credential is required",
    };
    let mut s = format!("Route {} to origin {} ({access}", route.name, route.origin);
    if route.access != Access::Public {
        s.push_str(&format!("; {} credit(s) a call", route.cost));
        if !route.plans.is_empty() {
            s.push_str(&format!("; plans {}", route.plans.join(", ")));
        }
    }
    s.push(')');
    s
}
