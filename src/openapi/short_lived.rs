//! Short-lived token endpoints (`[short_lived] tokens_path`, `inspect_path`):
//! minted from a static key, each response under the profile's field name.

use super::errors::{admitted_headers, refusals, Refusal, MANAGEMENT_REFUSALS};
use super::{json_body, json_response, path_param, routes, schema_ref, wrapped, Paths};
use crate::config::{Config, ShortLivedSettings};
use serde_json::{json, Map, Value};

/// The token schemas, if the profile has short-lived tokens.
pub fn schemas(cfg: &Config) -> Option<Value> {
    let s = cfg.short_lived.as_ref()?;
    let view = |token: bool| {
        let mut props = Map::new();
        props.insert("id".into(), json!({"type": "string", "format": "uuid"}));
        if token {
            props.insert(
                "token".into(),
                json!({"type": "string", "description": "the JWT, shown this once"}),
            );
        }
        props.insert(
            "expiresTimeString".into(),
            json!({"type": "string", "format": "date-time"}),
        );
        props.insert(
            "requestLimit".into(),
            json!({"type": "string", "pattern": "^[0-9]+$"}),
        );
        props.insert(
            "remaining".into(),
            json!({"type": "string", "pattern": "^[0-9]+$"}),
        );
        let required: Vec<String> = props.keys().cloned().collect();
        json!({"type": "object", "required": required, "properties": props})
    };
    let create = json!({
        "type": "object",
        "minProperties": 1,
        "description": "at least one of the fields",
        "properties": {
            "expiresIn": {"type": "integer", "description": "milliseconds",
                          "minimum": ms(s.min_expires_in), "maximum": ms(s.max_expires_in),
                          "default": ms(s.default_expires_in)},
            "count": {"type": "integer", "minimum": 1, "maximum": s.max_count, "default": 1},
            "requestLimit": {"type": "string", "pattern": "^[0-9]+$",
                             "description": format!("1 to {}, as a string (default {})", s.max_request_limit, s.default_request_limit)},
        },
        "additionalProperties": false,
    });
    Some(json!({"ShortLivedToken": view(false), "MintedToken": view(true), "CreateTokens": create}))
}

/// Adds the token endpoints, if the profile has them.
pub fn add(paths: &mut Paths, cfg: &Config) {
    let Some(s) = &cfg.short_lived else {
        return;
    };
    let op = |id: &str, summary: &str, extra: &[Refusal], field: &str, body: Value| {
        let mut which = MANAGEMENT_REFUSALS.to_vec();
        which.extend_from_slice(extra);
        let mut responses = refusals(cfg, &which);
        responses.insert(
            "200".into(),
            json_response(summary, wrapped(field, body), admitted_headers(&[])),
        );
        json!({
            "tags": ["tokens"],
            "operationId": id,
            "summary": summary,
            "description": "Authenticated by a static API key of a plan with short-lived tokens; \
                            a short-lived token is refused (401).",
            "security": routes::key_security(cfg),
            "responses": responses,
        })
    };
    let tokens = |name: &str| json!({"type": "array", "items": schema_ref(name)});
    let mut mint = op(
        "createShortLivedTokens",
        &mint_summary(s),
        &[Refusal::Validation, Refusal::PayloadTooLarge],
        &s.fields.create,
        tokens("MintedToken"),
    );
    mint["requestBody"] = json_body(schema_ref("CreateTokens"));
    paths.add(&s.tokens_path, "post", mint);
    paths.add(
        &s.tokens_path,
        "get",
        op(
            "listShortLivedTokens",
            "The calling key's active tokens",
            &[],
            &s.fields.list,
            tokens("ShortLivedToken"),
        ),
    );
    let item = format!("{}/{{id}}", s.tokens_path.trim_end_matches('/'));
    let mut revoke = op(
        "revokeShortLivedToken",
        "Revoke one of the calling key's tokens",
        &[Refusal::NotFound],
        &s.fields.delete,
        json!({"type": "string", "format": "uuid"}),
    );
    revoke["parameters"] = json!([path_param(
        "id",
        "the token id",
        json!({"type": "string", "format": "uuid"})
    )]);
    paths.add(&item, "delete", revoke);
    let mut inspect = op(
        "inspectShortLivedToken",
        "One of the calling key's tokens, by its JWT",
        &[Refusal::NotFound],
        &s.fields.inspect,
        schema_ref("ShortLivedToken"),
    );
    inspect["parameters"] = json!([{"name": "token", "in": "query", "required": true, "schema": {"type": "string"}, "description": "the JWT"}]);
    paths.add(&s.inspect_path, "get", inspect);
}

/// Milliseconds, as JSON numbers hold them.
fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn mint_summary(s: &ShortLivedSettings) -> String {
    format!(
        "Mint up to {} short-lived tokens from the calling static key (its own creation limit: {} per {} s)",
        s.max_count,
        s.creation.rate,
        s.creation.window.as_secs()
    )
}
