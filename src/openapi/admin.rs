//! The admin API (`src/management/admin/`): every route, on the admin
//! listener, behind the bearer admin token except `/healthz` and `/readyz`.

use super::errors::{refusals, Refusal};
use super::{json_body, json_response, path_param, schema_ref, Paths};
use crate::config::Config;
use serde_json::{json, Value};

/// One admin route.
struct AdminOp {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    /// The request body's schema name.
    body: Option<&'static str>,
    status: u16,
    /// The response body's schema name.
    response: &'static str,
    /// Refusals besides those of every authenticated call (401, 500, 503).
    refusals: &'static [Refusal],
}

use Refusal::{BadRequest, Conflict, NotFound, PayloadTooLarge, Validation};

/// Every authenticated admin route, as `src/management/admin/mod.rs` dispatches them.
const OPS: [AdminOp; 8] = [
    AdminOp {
        method: "post",
        path: "/v1/accounts",
        id: "adminCreateAccount",
        summary: "Create an account on a plan, with optional starting credits",
        body: Some("CreateAccount"),
        status: 201,
        response: "Account",
        refusals: &[BadRequest, Validation, Conflict, PayloadTooLarge],
    },
    AdminOp {
        method: "get",
        path: "/v1/accounts/{id}",
        id: "adminShowAccount",
        summary: "Show an account with its credit balance and active keys",
        body: None,
        status: 200,
        response: "AccountView",
        refusals: &[NotFound],
    },
    AdminOp {
        method: "post",
        path: "/v1/accounts/{id}/credits",
        id: "adminAddCredits",
        summary: "Change an account's credit balance",
        body: Some("AddCredits"),
        status: 200,
        response: "CreditBalance",
        refusals: &[BadRequest, Validation, NotFound, Conflict, PayloadTooLarge],
    },
    AdminOp {
        method: "post",
        path: "/v1/keys",
        id: "adminCreateKey",
        summary: "Create a key; the only response with its plaintext",
        body: Some("CreateKey"),
        status: 201,
        response: "IssuedKey",
        refusals: &[BadRequest, Validation, NotFound, PayloadTooLarge],
    },
    AdminOp {
        method: "get",
        path: "/v1/keys",
        id: "adminListKeys",
        summary: "List an account's active keys (and the inactive ones asked for)",
        body: None,
        status: 200,
        response: "KeyList",
        refusals: &[BadRequest],
    },
    AdminOp {
        method: "get",
        path: "/v1/keys/{id}",
        id: "adminShowKey",
        summary: "Show one key",
        body: None,
        status: 200,
        response: "Key",
        refusals: &[BadRequest, NotFound],
    },
    AdminOp {
        method: "delete",
        path: "/v1/keys/{id}",
        id: "adminRevokeKey",
        summary: "Revoke a key and the short-lived tokens minted from it",
        body: None,
        status: 200,
        response: "Key",
        refusals: &[BadRequest, NotFound],
    },
    AdminOp {
        method: "get",
        path: "/v1/keys/{id}/usage",
        id: "adminKeyUsage",
        summary: "A key's usage: lastUsedAt, the last 50 calls, 7-day daily counts",
        body: None,
        status: 200,
        response: "KeyUsage",
        refusals: &[BadRequest, NotFound],
    },
];

/// The admin listener, for every admin path.
fn servers() -> Value {
    json!([{
        "url": "http://{admin}",
        "description": "the admin listener ([admin] listen)",
        "variables": {"admin": {"default": "127.0.0.1:9090"}},
    }])
}

/// Adds the admin API to `paths`.
pub fn add(paths: &mut Paths, cfg: &Config) {
    probes(paths);
    for op in &OPS {
        paths.add(op.path, op.method, operation(cfg, op));
        paths.set(op.path, "servers", servers());
    }
}

/// `/healthz` and `/readyz`: no token.
fn probes(paths: &mut Paths) {
    paths.add(
        "/healthz",
        "get",
        json!({
            "tags": ["admin"],
            "operationId": "adminHealthz",
            "summary": "Liveness; no token needed",
            "security": [],
            "responses": {"200": json_response("alive", schema_ref("Health"), json!({}))},
        }),
    );
    paths.add(
        "/readyz",
        "get",
        json!({
            "tags": ["admin"],
            "operationId": "adminReadyz",
            "summary": "Readiness (the store and every origin); no token needed",
            "security": [],
            "responses": {
                "200": json_response("ready", schema_ref("Readiness"), json!({})),
                "503": json_response("not ready: what is not", schema_ref("Readiness"),
                    json!({"Retry-After": {"$ref": "#/components/headers/Retry-After"}})),
            },
        }),
    );
    for path in ["/healthz", "/readyz"] {
        paths.set(path, "servers", servers());
    }
}

fn operation(cfg: &Config, op: &AdminOp) -> Value {
    let mut all = vec![Refusal::Unauthorized];
    all.extend_from_slice(op.refusals);
    all.extend([Refusal::Internal, Refusal::Unavailable]);
    let mut responses = refusals(cfg, &all);
    responses.insert(
        op.status.to_string(),
        json_response(op.summary, schema_ref(op.response), json!({})),
    );
    let mut o = json!({
        "tags": ["admin"],
        "operationId": op.id,
        "summary": op.summary,
        "security": [{"adminToken": []}],
        "responses": responses,
    });
    let params = parameters(op);
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some(body) = op.body {
        o["requestBody"] = json_body(schema_ref(body));
    }
    o
}

fn parameters(op: &AdminOp) -> Vec<Value> {
    if op.path.starts_with("/v1/accounts/") {
        return vec![path_param(
            "id",
            "the account id",
            json!({"type": "string"}),
        )];
    }
    if op.path.starts_with("/v1/keys/") {
        return vec![path_param(
            "id",
            "the key id",
            json!({"type": "string", "format": "uuid"}),
        )];
    }
    if op.path == "/v1/keys" && op.method == "get" {
        return vec![
            json!({"name": "account", "in": "query", "required": true, "schema": {"type": "string"}}),
            json!({"name": "include", "in": "query", "required": false,
                   "description": "inactive keys to show too: revoked, expired (comma-separated) or all",
                   "schema": {"type": "string"}}),
        ];
    }
    Vec::new()
}
