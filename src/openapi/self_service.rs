//! Self-service key management (`[self_service] path`): an account's own
//! keys, with one of its keys, in the profile's envelope and field names.

use super::errors::{admitted_headers, refusals, Refusal, MANAGEMENT_REFUSALS};
use super::schemas::account_key;
use super::{json_body, json_response, path_param, routes, schema_ref, wrapped, Paths};
use crate::config::{Config, SelfServiceSettings};
use serde_json::{json, Value};

/// The profile's envelope around a body, if it has one.
fn envelope(s: &SelfServiceSettings, inner: Value) -> Value {
    match &s.envelope {
        Some(field) => wrapped(field, inner),
        None => inner,
    }
}

/// Adds the self-service endpoints, if the profile has them.
pub fn add(paths: &mut Paths, cfg: &Config) {
    let Some(s) = &cfg.self_service else {
        return;
    };
    let op = |id: &str, summary: &str, extra: &[Refusal], status: &str, body: Value| {
        let mut which = MANAGEMENT_REFUSALS.to_vec();
        which.extend_from_slice(extra);
        let mut responses = refusals(cfg, &which);
        responses.insert(
            status.into(),
            json_response(summary, envelope(s, body), admitted_headers(&[])),
        );
        json!({
            "tags": ["keys"],
            "operationId": id,
            "summary": summary,
            "security": routes::key_security(cfg),
            "responses": responses,
        })
    };
    let list = json!({"type": "array", "items": schema_ref("AccountKey")});
    paths.add(
        &s.path,
        "get",
        op(
            "listAccountKeys",
            "The account's keys, with lastUsedAt",
            &[],
            "200",
            list,
        ),
    );
    let mut create = op(
        "createAccountKey",
        "Create a key for the account; the response carries its plaintext once",
        &[Refusal::Validation, Refusal::PayloadTooLarge],
        "201",
        account_key(Some(&s.key_field)),
    );
    create["requestBody"] = json_body(json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "expiresAt": {"type": "string", "format": "date-time",
                          "description": "plans with custom expiry only; never later than the calling key's"},
        },
        "additionalProperties": false,
    }));
    paths.add(&s.path, "post", create);
    let item = format!("{}/{{id}}", s.path.trim_end_matches('/'));
    let mut revoke = op(
        "revokeAccountKey",
        "Revoke one of the account's keys",
        &[Refusal::NotFound],
        "200",
        schema_ref("AccountKey"),
    );
    revoke["parameters"] = json!([path_param(
        "id",
        "the key id",
        json!({"type": "string", "format": "uuid"})
    )]);
    paths.add(&item, "delete", revoke);
}
