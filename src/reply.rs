//! Every response tollgate writes itself: the error kinds, the profile's error
//! template, and the rendered reply (status, headers, JSON body).

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The kinds of answer tollgate gives on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    BadRequest,
    /// A request body tollgate parses itself does not have the expected shape
    /// (bad JSON, a missing or unknown field, a wrong type). Rendered like
    /// `BadRequest` unless the profile configures `[errors.validation]`.
    Validation,
    Unauthorized,
    InsufficientCredits,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    HeadersTooLarge,
    RateLimited,
    RequestLimit,
    KeyLimit,
    BadGateway,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// Every kind, for validation and docs.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthorized,
        ErrorKind::InsufficientCredits,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Conflict,
        ErrorKind::PayloadTooLarge,
        ErrorKind::HeadersTooLarge,
        ErrorKind::RateLimited,
        ErrorKind::RequestLimit,
        ErrorKind::KeyLimit,
        ErrorKind::BadGateway,
        ErrorKind::Unavailable,
        ErrorKind::Internal,
        ErrorKind::Validation,
    ];

    /// HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest | ErrorKind::Validation | ErrorKind::KeyLimit => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::InsufficientCredits => 402,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::HeadersTooLarge => 431,
            ErrorKind::RateLimited | ErrorKind::RequestLimit => 429,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }

    /// Machine-readable code, the `{code}` of the template.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadRequest | ErrorKind::Validation => "BAD_REQUEST",
            ErrorKind::Unauthorized => "UNAUTHORIZED",
            ErrorKind::InsufficientCredits => "INSUFFICIENT_CREDITS",
            ErrorKind::Forbidden => "FORBIDDEN",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorKind::Conflict => "CONFLICT",
            ErrorKind::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorKind::HeadersTooLarge => "HEADERS_TOO_LARGE",
            ErrorKind::RateLimited => "RATE_LIMITED",
            ErrorKind::RequestLimit => "REQUEST_LIMIT_EXHAUSTED",
            ErrorKind::KeyLimit => "KEY_LIMIT_REACHED",
            ErrorKind::BadGateway => "BAD_GATEWAY",
            ErrorKind::Unavailable => "SERVICE_UNAVAILABLE",
            ErrorKind::Internal => "INTERNAL_ERROR",
        }
    }

    /// The name used under `[errors.messages]` and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Validation => "validation",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::InsufficientCredits => "insufficient_credits",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::HeadersTooLarge => "headers_too_large",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::RequestLimit => "request_limit",
            ErrorKind::KeyLimit => "key_limit",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// Built-in message; `{detail}` is the specific reason, other names are filled by the caller.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorKind::BadRequest | ErrorKind::Validation => "{detail}",
            ErrorKind::Unauthorized => "{detail}",
            ErrorKind::InsufficientCredits => {
                "insufficient credits (balance {balance}, cost {cost})"
            }
            ErrorKind::Forbidden => "{detail}",
            ErrorKind::NotFound => "{detail}",
            ErrorKind::MethodNotAllowed => "method not allowed",
            ErrorKind::Conflict => "{detail}",
            ErrorKind::PayloadTooLarge => "request body too large",
            ErrorKind::HeadersTooLarge => "request headers too large",
            ErrorKind::RateLimited => {
                "rate limit exceeded ({limit}/{window}); consider batching requests."
            }
            ErrorKind::RequestLimit => {
                "this token's request limit ({limit} requests) is used up; create a new token"
            }
            ErrorKind::KeyLimit => "active key limit reached ({max}); revoke an old key first",
            ErrorKind::BadGateway => "upstream unavailable; retry in {retry} seconds",
            ErrorKind::Unavailable => "{detail}",
            ErrorKind::Internal => "internal error",
        }
    }

    /// Looks a kind up by its `[errors.messages]` name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The profile's error body: a JSON value whose strings may hold `{code}`,
/// `{message}` and `{status}`; a string that is exactly `{details}` becomes the
/// error's structured details, or is dropped when there are none.
#[derive(Debug, Clone)]
pub struct ErrorTemplate {
    body: Value,
    messages: BTreeMap<ErrorKind, String>,
    /// `None`: validation errors render like `BadRequest` (400, no details).
    validation: Option<ValidationTemplate>,
}

impl Default for ErrorTemplate {
    fn default() -> Self {
        Self {
            body: serde_json::json!({"error": {"code": "{code}", "message": "{message}", "details": "{details}"}}),
            messages: BTreeMap::new(),
            validation: None,
        }
    }
}

/// How a profile answers [`ErrorKind::Validation`]: its status, `{code}`, body
/// and the shape of each problem in `{details}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationTemplate {
    /// HTTP status (4xx).
    pub status: u16,
    /// The `{code}` of the body.
    pub code: String,
    /// The body; `None`: the profile's error template. A string that is exactly
    /// `{details}` becomes the list of problems.
    pub body: Option<Value>,
    /// One problem: a string that is exactly `{loc}` becomes its location (an
    /// array starting with `"body"`); strings may hold `{msg}`, `{type}` and
    /// `{field}` (the dotted path).
    pub item: Value,
}

impl ValidationTemplate {
    /// The item shape used when a profile does not give one:
    /// `{"loc": [...], "msg": "...", "type": "..."}`.
    pub fn default_item() -> Value {
        serde_json::json!({"loc": "{loc}", "msg": "{msg}", "type": "{type}"})
    }

    fn render_item(&self, p: &FieldProblem) -> Option<Value> {
        let vars = [
            ("msg", p.msg.clone()),
            ("type", p.kind.to_string()),
            ("field", p.field()),
        ];
        let loc = Value::Array(p.loc.clone());
        render_value(&self.item, &vars, &[("{loc}", Some(&loc))])
    }
}

/// One problem with a request body: where it is, what kind it is, and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldProblem {
    /// The path to the field: `"body"`, then object keys and array indices.
    pub loc: Vec<Value>,
    /// The kind of problem: `json_invalid`, `missing`, `extra_forbidden`,
    /// `string_type`, `int_type`, `value_error`, ...
    pub kind: &'static str,
    /// A sentence for people.
    pub msg: String,
}

impl FieldProblem {
    /// A problem at `body.<path...>`.
    pub fn at<I, S>(path: I, kind: &'static str, msg: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Value>,
    {
        let mut loc = vec![Value::from("body")];
        loc.extend(path.into_iter().map(Into::into));
        Self {
            loc,
            kind,
            msg: msg.into(),
        }
    }

    /// A problem with the body as a whole (`loc` is `["body"]`).
    pub fn whole_body(kind: &'static str, msg: impl Into<String>) -> Self {
        Self {
            loc: vec![Value::from("body")],
            kind,
            msg: msg.into(),
        }
    }

    /// The location without `"body"`, dotted (`items.0.name`); empty for the body itself.
    pub fn field(&self) -> String {
        self.loc
            .iter()
            .skip(1)
            .map(|s| match s {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

fn fill(text: &str, vars: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        let needle = format!("{{{name}}}");
        if out.contains(&needle) {
            out = out.replace(&needle, value);
        }
    }
    out
}

impl ErrorTemplate {
    /// A template with a body and message overrides.
    pub fn new(body: Value, messages: BTreeMap<ErrorKind, String>) -> Self {
        Self {
            body,
            messages,
            validation: None,
        }
    }

    /// Answers validation errors with their own status and shape.
    pub fn with_validation(mut self, validation: ValidationTemplate) -> Self {
        self.validation = Some(validation);
        self
    }

    /// The validation answer, when the profile configures one.
    pub fn validation(&self) -> Option<&ValidationTemplate> {
        self.validation.as_ref()
    }

    /// The body every error is rendered from (for the OpenAPI document).
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// The message for `kind` with `vars` filled in.
    pub fn message(&self, kind: ErrorKind, vars: &[(&str, String)]) -> String {
        // A validation error was a bad request before it had a kind of its
        // own: a profile's `bad_request` text still applies to it.
        let fallback = match kind {
            ErrorKind::Validation => self.messages.get(&ErrorKind::BadRequest),
            _ => None,
        };
        let text = self
            .messages
            .get(&kind)
            .or(fallback)
            .map(String::as_str)
            .unwrap_or(kind.default_message());
        fill(text, vars)
    }

    /// Renders an error reply.
    pub fn render(&self, err: &ApiError) -> Reply {
        let validation = match err.kind {
            ErrorKind::Validation => self.validation.as_ref(),
            _ => None,
        };
        let status = validation.map_or(err.kind.status(), |v| v.status);
        let code = validation.map_or(err.kind.code(), |v| v.code.as_str());
        let message = self.message(err.kind, &err.vars);
        let vars = [
            ("code", code.to_string()),
            ("message", message),
            ("status", status.to_string()),
        ];
        let (template, details) = match validation {
            Some(v) => (
                v.body.as_ref().unwrap_or(&self.body),
                Some(Value::Array(
                    err.problems
                        .iter()
                        .filter_map(|p| v.render_item(p))
                        .collect(),
                )),
            ),
            None => (&self.body, err.details.clone()),
        };
        let body = render_value(template, &vars, &[("{details}", details.as_ref())])
            .unwrap_or(Value::Null);
        Reply {
            status,
            headers: err.headers.clone(),
            body: body.to_string().into_bytes(),
        }
    }
}

/// Fills `vars` into every string of `v`; a string equal to one of `exact`'s
/// names becomes that value, or is dropped when it is `None`.
fn render_value(
    v: &Value,
    vars: &[(&str, String)],
    exact: &[(&str, Option<&Value>)],
) -> Option<Value> {
    match v {
        Value::String(s) => match exact.iter().find(|(name, _)| name == s) {
            Some((_, value)) => value.cloned(),
            None => Some(Value::String(fill(s, vars))),
        },
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|i| render_value(i, vars, exact))
                .collect(),
        )),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, val) in map {
                if let Some(r) = render_value(val, vars, exact) {
                    out.insert(k.clone(), r);
                }
            }
            Some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

/// An error on its way to the client: kind, message variables, details and headers.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub vars: Vec<(&'static str, String)>,
    pub details: Option<Value>,
    pub headers: Vec<(String, String)>,
    /// What is wrong with the request body, for [`ErrorKind::Validation`].
    pub problems: Vec<FieldProblem>,
}

impl ApiError {
    /// An error of `kind` with no variables.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            vars: Vec::new(),
            details: None,
            headers: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// A validation error: `detail` is the message (as with `BadRequest`),
    /// `problem` what a profile with `[errors.validation]` lists.
    pub fn validation(detail: impl Into<String>, problem: FieldProblem) -> Self {
        let mut e = Self::detail(ErrorKind::Validation, detail);
        e.problems.push(problem);
        e
    }

    /// An error whose message is `detail` (for kinds whose message is `{detail}`).
    pub fn detail(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self::new(kind).var("detail", detail)
    }

    /// Adds a message variable.
    pub fn var(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.vars.push((name, value.into()));
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets structured details.
    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// A response ready to write: status, extra headers and a JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON success (or any) response.
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_detail_template() {
        let t = ErrorTemplate::new(json!({"detail": "{message}"}), BTreeMap::new());
        let r = t.render(
            &ApiError::new(ErrorKind::RateLimited)
                .var("limit", "60")
                .var("window", "min"),
        );
        assert_eq!(r.status, 429);
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(
            v,
            json!({"detail": "rate limit exceeded (60/min); consider batching requests."})
        );
    }

    #[test]
    fn details_are_dropped_or_filled() {
        let t = ErrorTemplate::default();
        let r = t.render(&ApiError::detail(ErrorKind::BadRequest, "bad \"limit\""));
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(
            v,
            json!({"error": {"code": "BAD_REQUEST", "message": "bad \"limit\""}})
        );
        let r = t.render(
            &ApiError::new(ErrorKind::InsufficientCredits)
                .var("balance", "0")
                .var("cost", "1")
                .details(json!({"balance": 0})),
        );
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["error"]["details"], json!({"balance": 0}));
        assert_eq!(r.status, 402);
    }

    fn name_not_a_string() -> ApiError {
        ApiError::validation(
            "field name must be a string",
            FieldProblem::at(["name"], "string_type", "Input should be a valid string"),
        )
    }

    #[test]
    fn validation_renders_like_bad_request_unless_configured() {
        let t = ErrorTemplate::default();
        let r = t.render(&name_not_a_string());
        assert_eq!(r.status, 400);
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(
            v,
            json!({"error": {"code": "BAD_REQUEST", "message": "field name must be a string"}})
        );
        let t = ErrorTemplate::new(json!({"detail": "{message}"}), BTreeMap::new());
        let v: Value = serde_json::from_slice(&t.render(&name_not_a_string()).body).expect("json");
        assert_eq!(v, json!({"detail": "field name must be a string"}));
        // A `bad_request` message applies unless `validation` has its own.
        let mut messages = BTreeMap::from([(ErrorKind::BadRequest, "bad: {detail}".to_string())]);
        let t = ErrorTemplate::new(json!({"detail": "{message}"}), messages.clone());
        let v: Value = serde_json::from_slice(&t.render(&name_not_a_string()).body).expect("json");
        assert_eq!(v, json!({"detail": "bad: field name must be a string"}));
        messages.insert(ErrorKind::Validation, "shape: {detail}".to_string());
        let t = ErrorTemplate::new(json!({"detail": "{message}"}), messages);
        let v: Value = serde_json::from_slice(&t.render(&name_not_a_string()).body).expect("json");
        assert_eq!(v, json!({"detail": "shape: field name must be a string"}));
    }

    #[test]
    fn configured_validation_has_its_status_body_and_items() {
        let t = ErrorTemplate::new(json!({"detail": "{message}"}), BTreeMap::new())
            .with_validation(ValidationTemplate {
                status: 422,
                code: "VALIDATION".into(),
                body: Some(json!({"detail": "{details}", "code": "{code}", "status": "{status}"})),
                item: ValidationTemplate::default_item(),
            });
        let r = t.render(&name_not_a_string());
        assert_eq!(r.status, 422);
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(
            v,
            json!({
                "detail": [{"loc": ["body", "name"], "msg": "Input should be a valid string", "type": "string_type"}],
                "code": "VALIDATION",
                "status": "422",
            })
        );
        // Other kinds are untouched.
        let r = t.render(&ApiError::detail(ErrorKind::BadRequest, "bad limit"));
        assert_eq!(r.status, 400);
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body).expect("json"),
            json!({"detail": "bad limit"})
        );
        // Without a body of its own, the profile's template holds the list;
        // an item may be a string.
        let t = ErrorTemplate::default().with_validation(ValidationTemplate {
            status: 400,
            code: "BAD_REQUEST".into(),
            body: None,
            item: json!("{field}: {msg} ({type})"),
        });
        let problem = FieldProblem::at(
            [json!("items"), json!(0), json!("id")],
            "int_type",
            "Input should be a valid integer",
        );
        let v: Value =
            serde_json::from_slice(&t.render(&ApiError::validation("bad", problem)).body)
                .expect("json");
        assert_eq!(
            v,
            json!({"error": {"code": "BAD_REQUEST", "message": "bad", "details": ["items.0.id: Input should be a valid integer (int_type)"]}})
        );
    }
}
