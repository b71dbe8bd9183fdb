//! Live responses against the checked-in OpenAPI documents: real tollgate
//! processes (memory store) in front of the sample origin, called over real
//! sockets; each JSON body is checked against the schema the document gives
//! for its path, method and status (required fields, JSON types, constants
//! and enums, formats of timestamps and UUIDs, through `$ref`s), and the
//! documented required headers are checked too. `tests/openapi.rs` keeps the
//! documents equal to what `tollgate openapi` prints.
#![allow(clippy::expect_used)]

#[macro_use]
mod common;

use common::*;
use serde_json::{json, Value};

/// A checked-in document and the checks made against it.
struct Doc(Value);

impl Doc {
    fn load(profile: &str) -> Self {
        let path = root().join("docs/openapi").join(format!("{profile}.json"));
        let text = std::fs::read_to_string(&path).expect("checked-in document");
        Self(serde_json::from_str(&text).expect("JSON"))
    }

    /// Follows a local `$ref`.
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v["$ref"].as_str() {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                self.resolve(self.0.pointer(pointer).unwrap_or(&Value::Null))
            }
            None => v,
        }
    }

    /// Checks a live response against the document's `method path` → status.
    fn check(&self, path: &str, method: &str, r: &Resp) {
        let op = &self.0["paths"][path][method];
        assert!(op.is_object(), "the document has no {method} {path}");
        let documented = &op["responses"][r.status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {path}: status {} is not documented ({})",
            r.status,
            r.body
        );
        let response = self.resolve(documented);
        let schema = &response["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} {}: no JSON schema",
            r.status
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{method} {path}"
        );
        let mut problems = Vec::new();
        self.walk(schema, &r.json(), "$", &mut problems);
        self.headers(response, r, &mut problems);
        assert!(
            problems.is_empty(),
            "{method} {path} {}: {problems:#?}\nbody: {}",
            r.status,
            r.body
        );
    }

    /// Required headers present; integer headers integers.
    fn headers(&self, response: &Value, r: &Resp, problems: &mut Vec<String>) {
        let Some(headers) = response["headers"].as_object() else {
            return;
        };
        for (name, h) in headers {
            let h = self.resolve(h);
            match r.header(name) {
                None if h["required"] == true => problems.push(format!("header {name} missing")),
                Some(v) if h["schema"]["type"] == "integer" && v.parse::<i64>().is_err() => {
                    problems.push(format!("header {name}: {v:?} is not an integer"))
                }
                _ => {}
            }
        }
    }

    /// Collects what in `value` does not fit `schema`.
    fn walk(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(alternatives) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
            let fits = alternatives.iter().any(|s| {
                let mut p = Vec::new();
                self.walk(s, value, at, &mut p);
                p.is_empty()
            });
            if !fits {
                out.push(format!("{at}: fits none of the alternatives"));
            }
            return;
        }
        if let Some(c) = schema.get("const") {
            if c != value {
                out.push(format!("{at}: {value} is not {c}"));
            }
        }
        if let Some(options) = schema["enum"].as_array() {
            if !options.contains(value) {
                out.push(format!("{at}: {value} is not one of {options:?}"));
            }
        }
        if !type_fits(&schema["type"], value) {
            out.push(format!("{at}: {value} is not of type {}", schema["type"]));
            return;
        }
        if let Some(s) = value.as_str() {
            format_problem(schema["format"].as_str(), s, at, out);
        }
        self.walk_object(schema, value, at, out);
        if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
            for (i, v) in values.iter().enumerate() {
                self.walk(items, v, &format!("{at}[{i}]"), out);
            }
        }
    }

    fn walk_object(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
        let Some(object) = value.as_object() else {
            return;
        };
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap_or_default();
            if !object.contains_key(field) {
                out.push(format!("{at}: required field {field} missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (k, v) in object {
            match properties.and_then(|p| p.get(k)) {
                Some(s) => self.walk(s, v, &format!("{at}.{k}"), out),
                None if schema["additionalProperties"] == false => {
                    out.push(format!("{at}: field {k} is not documented"))
                }
                None => {
                    if let Some(extra) =
                        schema.get("additionalProperties").filter(|s| s.is_object())
                    {
                        self.walk(extra, v, &format!("{at}.{k}"), out);
                    }
                }
            }
        }
    }
}

fn type_fits(t: &Value, value: &Value) -> bool {
    let one = |name: &str| match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    };
    match t {
        Value::String(name) => one(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(one),
        _ => true,
    }
}

fn format_problem(format: Option<&str>, s: &str, at: &str, out: &mut Vec<String>) {
    let ok = match format {
        Some("date-time") => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        Some("date") => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        Some("uuid") => s.len() == 36 && s.bytes().filter(|b| *b == b'-').count() == 4,
        _ => true,
    };
    if !ok {
        out.push(format!(
            "{at}: {s:?} is not a {}",
            format.unwrap_or_default()
        ));
    }
}

/// Calls `path` until it answers `status` (at most `max` calls); the last answer.
fn until(max: usize, status: u16, mut call: impl FnMut() -> Resp) -> Resp {
    for _ in 0..max {
        let r = call();
        if r.status == status {
            return r;
        }
        assert!(r.status < 300, "unexpected {}: {}", r.status, r.body);
    }
    panic!("no {status} in {max} calls");
}

#[test]
fn admin_api_and_refusals_match_the_quantconomy_document() {
    let doc = Doc::load("quantconomy");
    let origin = start_origin();
    let gate = start_gate(GateOpts::new("quantconomy.toml", &origin.addr));
    let admin = |method: &str, path: &str, body: Option<Value>| gate.admin(method, path, body);
    doc.check("/healthz", "get", &admin("GET", "/healthz", None));
    doc.check("/readyz", "get", &admin("GET", "/readyz", None));
    let created = admin(
        "POST",
        "/v1/accounts",
        Some(json!({"id": "acme", "plan": "free"})),
    );
    doc.check("/v1/accounts", "post", &created);
    doc.check(
        "/v1/accounts",
        "post",
        &admin(
            "POST",
            "/v1/accounts",
            Some(json!({"id": "acme", "plan": "free"})),
        ),
    );
    doc.check(
        "/v1/accounts",
        "post",
        &admin("POST", "/v1/accounts", Some(json!({"id": "x"}))),
    );
    doc.check(
        "/v1/accounts/{id}",
        "get",
        &admin("GET", "/v1/accounts/acme", None),
    );
    doc.check(
        "/v1/accounts/{id}",
        "get",
        &admin("GET", "/v1/accounts/nobody", None),
    );
    let credits = admin("POST", "/v1/accounts/acme/credits", Some(json!({"add": 5})));
    doc.check("/v1/accounts/{id}/credits", "post", &credits);
    let key = admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "acme", "name": "primary"})),
    );
    doc.check("/v1/keys", "post", &key);
    let (id, token) = (
        key.json()["id"].as_str().expect("id").to_string(),
        key.json()["token"].as_str().expect("token").to_string(),
    );
    doc.check(
        "/v1/keys",
        "get",
        &admin("GET", "/v1/keys?account=acme", None),
    );
    doc.check(
        "/v1/keys/{id}",
        "get",
        &admin("GET", &format!("/v1/keys/{id}"), None),
    );
    doc.check(
        "/v1/keys/{id}",
        "get",
        &admin("GET", "/v1/keys/not-a-uuid", None),
    );
    let unauthorized = gate.admin_as(None, "GET", "/v1/keys?account=acme", None);
    assert_eq!(unauthorized.status, 401);
    doc.check("/v1/keys", "get", &unauthorized);
    metered_refusals_match(&doc, &gate, &token);
    doc.check(
        "/v1/keys/{id}/usage",
        "get",
        &admin("GET", &format!("/v1/keys/{id}/usage"), None),
    );
    doc.check(
        "/v1/keys/{id}",
        "delete",
        &admin("DELETE", &format!("/v1/keys/{id}"), None),
    );
    every_documented_admin_route_is_served(&doc, &gate, &id);
}

/// A metered route: the origin's answer, then 401, 429 and 402 from tollgate.
fn metered_refusals_match(doc: &Doc, gate: &Gate, token: &str) {
    assert_eq!(gate.get_with("/api/v1/entries", token).status, 200);
    doc.check("/{path}", "get", &gate.get("/api/v1/entries", &[]));
    doc.check(
        "/{path}",
        "get",
        &until(1000, 429, || gate.get_with("/api/v1/entries", token)),
    );
    doc.check(
        "/{path}",
        "get",
        &until(1000, 402, || gate.get_with("/api/v1/entries", "mtk_demo")),
    );
}

/// Every admin operation of the document reaches an endpoint (an answer
/// other than the dispatcher's "no admin endpoint" 404).
fn every_documented_admin_route_is_served(doc: &Doc, gate: &Gate, key_id: &str) {
    let mut calls = 0;
    for (path, item) in doc.0["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if op["tags"][0] != "admin" {
                continue;
            }
            let concrete = path
                .replace("/accounts/{id}", "/accounts/acme")
                .replace("{id}", key_id);
            let concrete = if concrete == "/v1/keys" && method == "get" {
                "/v1/keys?account=acme".to_string()
            } else {
                concrete
            };
            let body = op.get("requestBody").map(|_| json!({}));
            let r = gate.admin(&method.to_ascii_uppercase(), &concrete, body);
            assert!(
                !r.body.contains("no admin endpoint"),
                "{method} {path}: {}",
                r.body
            );
            calls += 1;
        }
    }
    assert!(calls >= 10, "{calls} admin operations");
}

#[test]
fn self_service_endpoints_match_the_quantconomy_document() {
    let doc = Doc::load("quantconomy");
    let origin = start_origin();
    let gate = start_gate(GateOpts::new("quantconomy.toml", &origin.addr));
    gate.create_account("acme", "free");
    let (_, token) = gate.create_key("acme", "primary");
    let auth = format!("Bearer {token}");
    let with_key = |method: &str, path: &str, body: Option<&str>| {
        gate.send(method, path, &[("authorization", &auth)], body)
    };
    const KEYS: &str = "/api/v1/account/api-keys";
    doc.check(KEYS, "get", &with_key("GET", KEYS, None));
    let created = with_key("POST", KEYS, Some(r#"{"name": "bot"}"#));
    doc.check(KEYS, "post", &created);
    doc.check(
        KEYS,
        "post",
        &with_key(
            "POST",
            KEYS,
            Some(r#"{"name": "bot", "expiresAt": "2099-01-01T00:00:00Z"}"#),
        ),
    );
    doc.check(
        KEYS,
        "post",
        &with_key("POST", KEYS, Some(r#"{"nom": "bot"}"#)),
    );
    let id = created.json()["data"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let item = format!("{KEYS}/{id}");
    doc.check(
        "/api/v1/account/api-keys/{id}",
        "delete",
        &with_key("DELETE", &item, None),
    );
    doc.check(
        "/api/v1/account/api-keys/{id}",
        "delete",
        &with_key("DELETE", &format!("{KEYS}/{}", uuid::Uuid::new_v4()), None),
    );
    let refused = with_key("PUT", KEYS, Some("{}"));
    assert_eq!(refused.status, 405);
    doc.check(KEYS, "get", &refused);
    doc.check(
        KEYS,
        "get",
        &gate.get(KEYS, &[("authorization", "Bearer mtk_demo")]),
    );
    doc.check(KEYS, "get", &gate.get(KEYS, &[]));
}

#[test]
fn validation_and_anonymous_refusals_match_the_mobiusquant_document() {
    let doc = Doc::load("mobiusquant");
    let origin = start_origin();
    let gate = start_gate(GateOpts::new("mobiusquant.toml", &origin.addr));
    let bad = gate.admin(
        "POST",
        "/v1/accounts",
        Some(json!({"id": 5, "plan": "token"})),
    );
    assert_eq!(bad.status, 422);
    doc.check("/v1/accounts", "post", &bad);
    gate.create_account("acme", "token");
    for _ in 0..10 {
        gate.create_key("acme", "k");
    }
    let over = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "acme", "name": "eleventh"})),
    );
    assert_eq!(over.status, 400);
    doc.check("/v1/keys", "post", &over);
    doc.check(
        "/v1/keys",
        "post",
        &gate.admin(
            "POST",
            "/v1/keys",
            Some(json!({"account": "nobody", "name": "k"})),
        ),
    );
    let trial = "/api/auth/trial-token";
    let missing = gate.send("POST", trial, &[], Some(r#"{"name": "t"}"#));
    assert_eq!(missing.status, 422);
    doc.check(trial, "post", &missing);
    doc.check(trial, "post", &gate.send("GET", trial, &[], None));
    doc.check(
        "/api/{path}",
        "get",
        &gate.get_with("/api/markets", "mq_not-a-real-token"),
    );
    doc.check(
        "/api/{path}",
        "get",
        &until(100, 429, || gate.get("/api/markets", &[])),
    );
}

#[test]
fn token_endpoints_match_the_mobula_document() {
    let doc = Doc::load("mobula");
    let origin = start_origin();
    let gate = start_gate(GateOpts::new("mobula.toml", &origin.addr));
    gate.create_account("acme", "startup");
    let (_, key) = gate.create_key("acme", "static");
    let auth = format!("Bearer {key}");
    let call = |method: &str, path: &str, body: Option<&str>| {
        gate.send(method, path, &[("authorization", &auth)], body)
    };
    const TOKENS: &str = "/api/2/auth/tokens";
    let minted = call(
        "POST",
        TOKENS,
        Some(r#"{"count": 2, "requestLimit": "10"}"#),
    );
    doc.check(TOKENS, "post", &minted);
    doc.check(
        TOKENS,
        "post",
        &call("POST", TOKENS, Some(r#"{"count": "two"}"#)),
    );
    doc.check(TOKENS, "post", &call("POST", TOKENS, Some("{}")));
    doc.check(TOKENS, "get", &call("GET", TOKENS, None));
    let first = &minted.json()["createApiTokens"][0];
    let (id, jwt) = (
        first["id"].as_str().expect("id").to_string(),
        first["token"].as_str().expect("jwt").to_string(),
    );
    doc.check(
        "/api/2/auth/token",
        "get",
        &call("GET", &format!("/api/2/auth/token?token={jwt}"), None),
    );
    doc.check(
        "/api/2/auth/tokens/{id}",
        "delete",
        &call("DELETE", &format!("{TOKENS}/{id}"), None),
    );
    doc.check(
        "/api/2/auth/tokens/{id}",
        "delete",
        &call("DELETE", &format!("{TOKENS}/{id}"), None),
    );
    gate.create_account("hobby", "free");
    let (_, free) = gate.create_key("hobby", "static");
    doc.check(TOKENS, "get", &gate.get_with(TOKENS, &free));
    doc.check("/api/{path}", "get", &gate.get("/api/2/market/data", &[]));
}

#[test]
fn the_schema_walker_finds_what_does_not_fit() {
    let doc = Doc::load("quantconomy");
    let key = json!({"$ref": "#/components/schemas/Key"});
    let mut problems = Vec::new();
    let wrong = json!({"id": "x", "name": 5, "keyPrefix": "mtk_", "account": null,
                       "kind": "other", "isActive": true, "createdAt": "yesterday",
                       "expiresAt": null, "revokedAt": null});
    doc.walk(&key, &wrong, "$", &mut problems);
    for expected in [
        "$.id",
        "$.name",
        "$.kind",
        "$.createdAt",
        "lastUsedAt missing",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected}: {problems:#?}"
        );
    }
    let limited = doc.resolve(&doc.0["components"]["responses"]["TooManyRequests"]);
    let schema = &limited["content"]["application/json"]["schema"];
    let mut problems = Vec::new();
    doc.walk(
        schema,
        &json!({"error": {"code": "NOPE"}}),
        "$",
        &mut problems,
    );
    assert_eq!(problems.len(), 2, "{problems:#?}");
}
