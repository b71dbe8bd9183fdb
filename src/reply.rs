//! Every response tollgate writes itself: the error kinds, the profile's error
//! template, and the rendered reply (status, headers, JSON body).

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The kinds of answer tollgate gives on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    BadRequest,
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
    pub const ALL: [ErrorKind; 15] = [
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
    ];

    /// HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest | ErrorKind::KeyLimit => 400,
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
            ErrorKind::BadRequest => "BAD_REQUEST",
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
            ErrorKind::BadRequest => "{detail}",
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
}

impl Default for ErrorTemplate {
    fn default() -> Self {
        Self {
            body: serde_json::json!({"error": {"code": "{code}", "message": "{message}", "details": "{details}"}}),
            messages: BTreeMap::new(),
        }
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
        Self { body, messages }
    }

    /// The message for `kind` with `vars` filled in.
    pub fn message(&self, kind: ErrorKind, vars: &[(&str, String)]) -> String {
        let text = self
            .messages
            .get(&kind)
            .map(String::as_str)
            .unwrap_or(kind.default_message());
        fill(text, vars)
    }

    /// Renders an error reply.
    pub fn render(&self, err: &ApiError) -> Reply {
        let message = self.message(err.kind, &err.vars);
        let vars = [
            ("code", err.kind.code().to_string()),
            ("message", message),
            ("status", err.kind.status().to_string()),
        ];
        let body = render_value(&self.body, &vars, err.details.as_ref()).unwrap_or(Value::Null);
        Reply {
            status: err.kind.status(),
            headers: err.headers.clone(),
            body: body.to_string().into_bytes(),
        }
    }
}

fn render_value(v: &Value, vars: &[(&str, String)], details: Option<&Value>) -> Option<Value> {
    match v {
        Value::String(s) if s == "{details}" => details.cloned(),
        Value::String(s) => Some(Value::String(fill(s, vars))),
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|i| render_value(i, vars, details))
                .collect(),
        )),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, val) in map {
                if let Some(r) = render_value(val, vars, details) {
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
}

impl ApiError {
    /// An error of `kind` with no variables.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            vars: Vec::new(),
            details: None,
            headers: Vec::new(),
        }
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
}
