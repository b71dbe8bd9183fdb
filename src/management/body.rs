//! Reading and parsing JSON request bodies for management endpoints.

use crate::reply::{ApiError, ErrorKind, FieldProblem};
use pingora::protocols::http::ServerSession;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

/// Reads a whole request body, refusing more than `max` bytes with 413.
pub async fn read(session: &mut ServerSession, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut raw = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => append(&mut raw, &chunk, max)?,
            Ok(None) => return Ok(raw),
            Err(e) => {
                return Err(ApiError::detail(
                    ErrorKind::BadRequest,
                    format!("cannot read body: {e}"),
                ))
            }
        }
    }
}

/// Appends a chunk, refusing bodies over `max` bytes with 413.
pub fn append(buf: &mut Vec<u8>, chunk: &[u8], max: usize) -> Result<(), ApiError> {
    if buf.len() + chunk.len() > max {
        return Err(ApiError::new(ErrorKind::PayloadTooLarge));
    }
    buf.extend_from_slice(chunk);
    Ok(())
}

/// Parses a JSON body; an empty body parses as `{}`. Errors are
/// [`ErrorKind::Validation`], name the field in their message and carry the
/// problem's location and type.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    // Serde would read a struct from an array too; a body is an object.
    let starts_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !starts_object && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Err(ApiError::validation(
            "invalid JSON body: expected a JSON object",
            FieldProblem::whole_body(
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let segments: Vec<Value> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                Segment::Seq { index } => Some(Value::from(*index)),
                Segment::Map { key } => Some(Value::from(key.as_str())),
                Segment::Enum { variant } => Some(Value::from(variant.as_str())),
                Segment::Unknown => None,
            })
            .collect();
        let inner = e.into_inner();
        let msg = if path == "." || path.is_empty() {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body: field {path}: {inner}")
        };
        ApiError::validation(msg, problem(segments, &inner))
    })
}

/// The location and type of a serde_json error, named like FastAPI's
/// validation errors (`loc`, `type`, `msg`).
fn problem(mut segments: Vec<Value>, e: &serde_json::Error) -> FieldProblem {
    let text = e.to_string();
    let text = text
        .strip_suffix(&format!(" at line {} column {}", e.line(), e.column()))
        .unwrap_or(&text);
    if !e.is_data() {
        // Syntax, early end of input or I/O: the body as a whole is not JSON.
        return FieldProblem::whole_body("json_invalid", format!("JSON decode error: {text}"));
    }
    if let Some(name) = quoted_after(text, "missing field `") {
        segments.push(Value::from(name));
        return FieldProblem::at(segments, "missing", "Field required");
    }
    if text.starts_with("unknown field `") {
        // The path already ends with the unknown key.
        return FieldProblem::at(
            segments,
            "extra_forbidden",
            "Extra inputs are not permitted",
        );
    }
    if let Some(rest) = text.strip_prefix("invalid type: ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, x)| x);
        let (kind, msg) = type_of(expected);
        return FieldProblem::at(segments, kind, msg);
    }
    FieldProblem::at(segments, "value_error", text.to_string())
}

/// The text between `prefix` and the next backtick, when `text` starts with `prefix`.
fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix)?.split('`').next()
}

/// A type error's `type` and message, from what serde expected.
fn type_of(expected: &str) -> (&'static str, &'static str) {
    let has = |words: &[&str]| words.iter().any(|w| expected.contains(w));
    if has(&["string", "char"]) {
        ("string_type", "Input should be a valid string")
    } else if has(&["u8", "u16", "u32", "u64", "u128", "usize"])
        || has(&["i8", "i16", "i32", "i64", "i128", "isize", "integer"])
    {
        ("int_type", "Input should be a valid integer")
    } else if has(&["f32", "f64", "float"]) {
        ("float_type", "Input should be a valid number")
    } else if has(&["bool"]) {
        ("bool_type", "Input should be a valid boolean")
    } else if has(&["sequence", "array", "tuple"]) {
        ("list_type", "Input should be a valid list")
    } else if has(&["map", "struct"]) {
        (
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )
    } else {
        ("value_error", "Input has the wrong type")
    }
}

/// A body field the endpoint does not know (the endpoint checks fields itself).
pub fn unknown_field(name: &str) -> ApiError {
    ApiError::validation(
        format!("unknown field {name}"),
        FieldProblem::at([name], "extra_forbidden", "Extra inputs are not permitted"),
    )
}

/// A required body field that is missing or empty; `detail` is the message.
pub fn missing_field(name: &str, detail: impl Into<String>) -> ApiError {
    ApiError::validation(
        detail,
        FieldProblem::at([name], "missing", "Field required"),
    )
}

/// A body field that should be a string and is not; `detail` is the message.
pub fn not_a_string(name: &str, detail: impl Into<String>) -> ApiError {
    ApiError::validation(
        detail,
        FieldProblem::at([name], "string_type", "Input should be a valid string"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        #[serde(default)]
        count: Option<u32>,
    }

    fn message(e: ApiError) -> String {
        e.vars
            .iter()
            .find(|(k, _)| *k == "detail")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    #[test]
    fn names_the_field() {
        let e = parse::<Body>(br#"{"name": "a", "count": "x"}"#).expect_err("bad type");
        assert!(message(e).contains("count"));
        let e = parse::<Body>(br#"{"nam": "a"}"#).expect_err("unknown");
        assert!(message(e).contains("nam"));
        let e = parse::<Body>(b"{}").expect_err("missing");
        assert!(message(e).contains("name"));
        let e = parse::<Body>(b"{oops").expect_err("syntax");
        assert!(message(e).contains("invalid JSON"));
        let mut buf = Vec::new();
        assert!(append(&mut buf, b"12345", 4).is_err());
    }

    fn problem_of(body: &[u8]) -> (ErrorKind, Vec<FieldProblem>) {
        let e = parse::<Body>(body).expect_err("invalid");
        (e.kind, e.problems)
    }

    #[test]
    fn problems_have_a_location_and_a_type() {
        let cases: [(&[u8], serde_json::Value, &str); 7] = [
            (br#"{"name": 123}"#, json!(["body", "name"]), "string_type"),
            (
                br#"{"name": "a", "count": "x"}"#,
                json!(["body", "count"]),
                "int_type",
            ),
            (
                br#"{"name": "a", "count": -1}"#,
                json!(["body", "count"]),
                "value_error",
            ),
            (
                br#"{"name": "a", "admin": true}"#,
                json!(["body", "admin"]),
                "extra_forbidden",
            ),
            (b"{}", json!(["body", "name"]), "missing"),
            (b"{oops", json!(["body"]), "json_invalid"),
            (b"[1]", json!(["body"]), "model_attributes_type"),
        ];
        for (body, loc, kind) in cases {
            let (k, problems) = problem_of(body);
            assert_eq!(k, ErrorKind::Validation);
            assert_eq!(problems.len(), 1, "{}", String::from_utf8_lossy(body));
            let p = &problems[0];
            assert_eq!(serde_json::Value::Array(p.loc.clone()), loc);
            assert_eq!(p.kind, kind, "{}", String::from_utf8_lossy(body));
            assert!(!p.msg.is_empty());
        }
        let (_, p) = problem_of(b"{oops");
        assert!(p[0].msg.starts_with("JSON decode error: "));
        assert!(!p[0].msg.contains(" at line "), "{}", p[0].msg);
    }

    #[test]
    fn nested_locations_keep_indices() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            items: Vec<Body>,
        }
        let e = parse::<Outer>(br#"{"items": [{"name": "a"}, {"nam": "b"}]}"#).expect_err("bad");
        assert_eq!(
            serde_json::Value::Array(e.problems[0].loc.clone()),
            json!(["body", "items", 1, "nam"])
        );
        let e = parse::<Outer>(br#"{"items": [{}]}"#).expect_err("bad");
        assert_eq!(
            serde_json::Value::Array(e.problems[0].loc.clone()),
            json!(["body", "items", 0, "name"])
        );
        assert_eq!(e.problems[0].field(), "items.0.name");
    }

    #[test]
    fn endpoint_checks_are_validation_errors_too() {
        let e = unknown_field("admin");
        assert_eq!(e.kind, ErrorKind::Validation);
        assert_eq!(message(e.clone()), "unknown field admin");
        assert_eq!(e.problems[0].kind, "extra_forbidden");
        let e = missing_field("captchaToken", "field captchaToken is required");
        assert_eq!(e.problems[0].kind, "missing");
        assert_eq!(e.problems[0].field(), "captchaToken");
        assert_eq!(not_a_string("name", "x").problems[0].kind, "string_type");
    }
}
