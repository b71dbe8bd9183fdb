//! The public trial endpoint (`[trial] path`): a key without an account,
//! behind human verification unless the profile turns it off.

use super::errors::{admitted_headers, refusals, Refusal};
use super::{json_body, json_response, schema_ref, Paths};
use crate::config::Config;
use serde_json::{json, Map};

/// Adds the trial endpoint, if the profile has one.
pub fn add(paths: &mut Paths, cfg: &Config) {
    let Some(trial) = &cfg.trial else {
        return;
    };
    let mut properties = Map::new();
    properties.insert(
        "name".into(),
        json!({"type": ["string", "null"], "description": "the key's name (default \"trial\")"}),
    );
    let mut required = Vec::new();
    let mut which = vec![Refusal::BadRequest, Refusal::Validation];
    if let Some(v) = &trial.verification {
        properties.insert(
            v.field.clone(),
            json!({"type": "string", "minLength": 1, "description": "the human-verification widget's token"}),
        );
        required.push(v.field.clone());
        which.push(Refusal::Forbidden);
    }
    which.extend([Refusal::MethodNotAllowed, Refusal::PayloadTooLarge]);
    if trial.issuance.is_some() {
        which.push(Refusal::TooManyRequests);
    }
    which.extend([Refusal::Internal, Refusal::Unavailable]);
    let mut responses = refusals(cfg, &which);
    let headers = match trial.issuance {
        Some(_) => admitted_headers(&[]),
        None => json!({}),
    };
    let summary = format!(
        "Issue a trial key on the {} plan, valid for {} seconds",
        trial.plan.name,
        trial.ttl.as_secs()
    );
    responses.insert(
        "201".into(),
        json_response("the new trial key", schema_ref("IssuedKey"), headers),
    );
    let body = json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": false,
    });
    paths.add(
        &trial.path,
        "post",
        json!({
            "tags": ["trial"],
            "operationId": "issueTrialKey",
            "summary": summary,
            "security": [],
            "requestBody": json_body(body),
            "responses": responses,
        }),
    );
}
