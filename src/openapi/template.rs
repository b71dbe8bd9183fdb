//! JSON Schemas of bodies rendered from a profile's templates (the error
//! template, the validation template and its items): what each placeholder
//! becomes, which fields are always there.

use serde_json::{json, Map, Value};

/// What the placeholders of one rendered body stand for.
#[derive(Debug, Clone)]
pub struct Placeholders<'a> {
    /// The `{code}` values this response can carry.
    pub codes: Vec<&'a str>,
    /// The status, which `{status}` renders as a string.
    pub status: u16,
    /// The schema of `{details}`; `None`: never present.
    pub details: Option<Value>,
    /// Whether `{details}` is always present (a validation list) or only
    /// when the error has details.
    pub details_required: bool,
}

/// The schema of the value `template` renders to.
pub fn schema(template: &Value, p: &Placeholders<'_>) -> Value {
    match template {
        Value::String(s) => string_schema(s, p),
        Value::Object(map) => object_schema(map, p),
        Value::Array(items) => array_schema(items, p),
        Value::Null => json!({"type": "null"}),
        other => json!({"const": other}),
    }
}

/// Whether a field holding `v` can be absent from the rendered body.
fn optional(v: &Value, p: &Placeholders<'_>) -> bool {
    v.as_str() == Some("{details}") && !(p.details.is_some() && p.details_required)
}

fn string_schema(s: &str, p: &Placeholders<'_>) -> Value {
    match s {
        "{code}" => json!({"type": "string", "enum": p.codes}),
        "{status}" => json!({"type": "string", "const": p.status.to_string()}),
        "{message}" => json!({"type": "string", "description": "what went wrong, for people"}),
        "{details}" => p.details.clone().unwrap_or_else(|| json!({})),
        _ if s.contains('{') => json!({"type": "string"}),
        _ => json!({"type": "string", "const": s}),
    }
}

fn object_schema(map: &Map<String, Value>, p: &Placeholders<'_>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (k, v) in map {
        if v.as_str() == Some("{details}") && p.details.is_none() {
            continue;
        }
        properties.insert(k.clone(), schema(v, p));
        if !optional(v, p) {
            required.push(Value::from(k.as_str()));
        }
    }
    json!({"type": "object", "required": required, "properties": properties})
}

fn array_schema(items: &[Value], p: &Placeholders<'_>) -> Value {
    // An exact `{details}` inside an array is dropped when there are none.
    let mut kinds: Vec<Value> = items.iter().map(|i| schema(i, p)).collect();
    match (kinds.pop(), kinds.is_empty()) {
        (None, _) => json!({"type": "array", "maxItems": 0}),
        (Some(only), true) => json!({"type": "array", "items": only}),
        (Some(last), false) => {
            kinds.push(last);
            json!({"type": "array", "items": {"anyOf": kinds}})
        }
    }
}

/// The schema of one validation problem rendered from the profile's item
/// template: `{loc}` is the location array, `{msg}`, `{type}`, `{field}` strings.
pub fn problem_schema(item: &Value) -> Value {
    match item {
        Value::String(s) if s == "{loc}" => json!({
            "type": "array",
            "description": "where the problem is: \"body\", then object keys and array indices",
            "items": {"type": ["string", "integer"]},
        }),
        Value::String(s) if s.contains('{') => json!({"type": "string"}),
        Value::Object(map) => {
            let properties: Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), problem_schema(v)))
                .collect();
            let required: Vec<&String> = map.keys().collect();
            json!({"type": "object", "required": required, "properties": properties})
        }
        Value::Array(items) => json!({
            "type": "array",
            "items": {"anyOf": items.iter().map(problem_schema).collect::<Vec<_>>()},
        }),
        Value::Null => json!({"type": "null"}),
        other => json!({"const": other}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(details: Option<Value>, required: bool) -> Placeholders<'static> {
        Placeholders {
            codes: vec!["RATE_LIMITED"],
            status: 429,
            details,
            details_required: required,
        }
    }

    #[test]
    fn details_are_optional_unless_always_rendered() {
        let t =
            json!({"error": {"code": "{code}", "message": "{message}", "details": "{details}"}});
        let s = schema(&t, &p(Some(json!({"type": "object"})), false));
        assert_eq!(s["required"], json!(["error"]));
        assert_eq!(
            s["properties"]["error"]["required"],
            json!(["code", "message"])
        );
        assert_eq!(
            s["properties"]["error"]["properties"]["code"]["enum"],
            json!(["RATE_LIMITED"])
        );
        let s = schema(&t, &p(None, false));
        assert!(s["properties"]["error"]["properties"]["details"].is_null());
        let s = schema(
            &json!({"detail": "{details}"}),
            &p(Some(json!({"type": "array"})), true),
        );
        assert_eq!(s["required"], json!(["detail"]));
    }

    #[test]
    fn literals_are_constants_and_status_is_a_string() {
        let s = schema(
            &json!({"ok": false, "s": "{status}", "k": "x"}),
            &p(None, false),
        );
        assert_eq!(s["properties"]["ok"], json!({"const": false}));
        assert_eq!(s["properties"]["s"]["const"], json!("429"));
        assert_eq!(s["properties"]["k"]["const"], json!("x"));
    }

    #[test]
    fn problems_have_their_location_array() {
        let s = problem_schema(&json!({"loc": "{loc}", "msg": "{msg}"}));
        assert_eq!(s["properties"]["loc"]["type"], json!("array"));
        assert_eq!(s["required"], json!(["loc", "msg"]));
    }
}
