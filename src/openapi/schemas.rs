//! The bodies tollgate's own endpoints read and write, as JSON Schemas under
//! `components.schemas`, with the field names the management code renders.
//! The profile-specific ones (envelopes, a self-service key's secret field,
//! short-lived token lists) are built where their endpoints are.

use crate::config::Config;
use serde_json::{json, Map, Value};

/// An RFC 3339 timestamp.
fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// An RFC 3339 timestamp or `null`.
fn time_or_null() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

/// An object whose every listed property is required.
fn object(properties: Value) -> Value {
    let required: Vec<String> = properties
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    json!({"type": "object", "required": required, "properties": properties})
}

/// Adds optional properties to an object schema.
fn with_optional(mut schema: Value, optional: Value) -> Value {
    if let (Some(props), Some(extra)) = (
        schema["properties"].as_object_mut(),
        optional.as_object().cloned(),
    ) {
        props.extend(extra);
    }
    schema
}

/// A request body: `required` fields, every field listed, nothing else.
fn request(required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": false,
    })
}

/// `components.schemas`.
pub fn all(cfg: &Config) -> Value {
    let mut out = Map::new();
    out.extend(admin_bodies(cfg));
    out.extend(key_views());
    if cfg.self_service.is_some() {
        out.insert("AccountKey".into(), account_key(None));
    }
    if let Some(Value::Object(m)) = super::short_lived::schemas(cfg) {
        out.extend(m);
    }
    Value::Object(out)
}

/// The admin API's request bodies and account views.
fn admin_bodies(cfg: &Config) -> Map<String, Value> {
    let plans: Vec<&String> = cfg.plans.keys().collect();
    let account =
        object(json!({"id": {"type": "string"}, "plan": {"type": "string"}, "createdAt": time()}));
    let credits = json!({"credits": {"type": "integer", "description": "the credit balance, where the plan meters credits"}});
    let mut out = Map::new();
    out.insert(
        "Health".into(),
        object(json!({"status": {"type": "string", "const": "ok"}})),
    );
    out.insert(
        "Readiness".into(),
        with_optional(
            object(json!({"status": {"type": "string", "enum": ["ready", "not ready"]}})),
            json!({
                "store": {"type": "string", "description": "why the store is not ready"},
                "origins": {"type": "object", "additionalProperties": {"type": "string"},
                            "description": "origins without a healthy server"},
            }),
        ),
    );
    out.insert("CreateAccount".into(), request(&["id", "plan"], json!({
        "id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
        "plan": {"type": "string", "enum": plans},
        "credits": {"type": "integer", "minimum": 0, "description": "starting credits (plans with a per-account balance)"},
    })));
    out.insert(
        "Account".into(),
        with_optional(account.clone(), credits.clone()),
    );
    let mut view = with_optional(account, credits);
    if let Some(props) = view["properties"].as_object_mut() {
        props.insert("activeKeys".into(), json!({"type": "integer"}));
        props.insert("maxActiveKeys".into(), json!({"type": ["integer", "null"]}));
        props.insert(
            "creditPool".into(),
            json!({"type": "string", "enum": ["account", "plan"]}),
        );
    }
    if let Some(req) = view["required"].as_array_mut() {
        req.extend([json!("activeKeys"), json!("maxActiveKeys")]);
    }
    out.insert("AccountView".into(), view);
    out.insert(
        "AddCredits".into(),
        request(
            &["add"],
            json!({
                "add": {"type": "integer", "description": "credits to add (negative to remove)"},
            }),
        ),
    );
    out.insert(
        "CreditBalance".into(),
        object(json!({"account": {"type": "string"}, "credits": {"type": "integer"}})),
    );
    out.insert(
        "CreateKey".into(),
        request(
            &["account", "name"],
            json!({
                "account": {"type": "string"},
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "expiresAt": time(),
            }),
        ),
    );
    out
}

/// Keys as the admin API and the trial endpoint show them, and usage.
fn key_views() -> Map<String, Value> {
    let kind = json!({"type": "string", "enum": ["standard", "trial", "public"]});
    let account = json!({"type": ["string", "null"]});
    let mut out = Map::new();
    out.insert(
        "IssuedKey".into(),
        object(json!({
            "id": uuid(),
            "token": {"type": "string", "description": "the key's plaintext, shown this once"},
            "keyPrefix": {"type": "string"},
            "name": {"type": "string"},
            "account": account,
            "kind": kind,
            "createdAt": time(),
            "expiresAt": time_or_null(),
        })),
    );
    out.insert(
        "Key".into(),
        object(json!({
            "id": uuid(),
            "name": {"type": "string"},
            "keyPrefix": {"type": "string"},
            "account": account,
            "kind": kind,
            "isActive": {"type": "boolean"},
            "createdAt": time(),
            "expiresAt": time_or_null(),
            "revokedAt": time_or_null(),
            "lastUsedAt": time_or_null(),
        })),
    );
    out.insert(
        "KeyList".into(),
        object(json!({
            "keys": {"type": "array", "items": super::schema_ref("Key")},
        })),
    );
    out.insert("CallRecord".into(), object(json!({
        "at": time(),
        "method": {"type": "string"},
        "path": {"type": "string"},
        "status": {"type": "integer"},
        "latencyMs": {"type": "integer"},
        "viaToken": {"type": ["string", "null"], "format": "uuid", "description": "the short-lived token used, if any"},
    })));
    out.insert("KeyUsage".into(), object(json!({
        "keyId": uuid(),
        "lastUsedAt": time_or_null(),
        "recentCalls": {"type": "array", "items": super::schema_ref("CallRecord"), "maxItems": 50},
        "daily": {"type": "array", "items": object(json!({"date": {"type": "string", "format": "date"}, "count": {"type": "integer"}}))},
    })));
    out
}

/// A key as the self-service endpoints show it; with `secret`, the field
/// that carries its plaintext on creation.
pub fn account_key(secret: Option<&str>) -> Value {
    let mut props = json!({
        "id": uuid(),
        "name": {"type": "string"},
        "keyPrefix": {"type": "string"},
        "isActive": {"type": "boolean"},
        "expiresAt": time_or_null(),
        "lastUsedAt": time_or_null(),
        "createdAt": time(),
    });
    if let Some(field) = secret {
        props[field] =
            json!({"type": "string", "description": "the key's plaintext, shown this once"});
    }
    object(props)
}
