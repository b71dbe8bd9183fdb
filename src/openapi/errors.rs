//! The error responses of a profile: one per status its error template can
//! answer with, each with the JSON body shape the template renders (the `code`
//! values, the profile's messages) and its headers (`Retry-After`, the
//! rate-limit headers, `WWW-Authenticate`, `Allow`).

use super::template::{self, Placeholders};
use crate::config::Config;
use crate::reply::ErrorKind;
use serde_json::{json, Map, Value};

/// The credit balance header an admission adds (the gatekeeper's name for it;
/// the live test in `tests/openapi_live.rs` sees it on a 402).
pub const CREDITS_HEADER: &str = "X-Credits-Remaining";
/// A short-lived token's remaining requests, as the gatekeeper sends them.
pub const TOKEN_HEADER: &str = "X-Token-Requests-Remaining";

/// The refusals every key-authenticated management operation can get.
pub const MANAGEMENT_REFUSALS: [Refusal; 7] = [
    Refusal::BadRequest,
    Refusal::Unauthorized,
    Refusal::Forbidden,
    Refusal::MethodNotAllowed,
    Refusal::TooManyRequests,
    Refusal::Internal,
    Refusal::Unavailable,
];

/// A refusal an operation can get, named after its response in `components`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    BadRequest,
    /// A request body of the wrong shape (its own status where the profile
    /// configures `[errors.validation]`).
    Validation,
    Unauthorized,
    PaymentRequired,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    TooManyRequests,
    HeadersTooLarge,
    Internal,
    BadGateway,
    Unavailable,
}

impl Refusal {
    /// Every refusal, in status order.
    pub const ALL: [Refusal; 14] = [
        Refusal::BadRequest,
        Refusal::Validation,
        Refusal::Unauthorized,
        Refusal::PaymentRequired,
        Refusal::Forbidden,
        Refusal::NotFound,
        Refusal::MethodNotAllowed,
        Refusal::Conflict,
        Refusal::PayloadTooLarge,
        Refusal::TooManyRequests,
        Refusal::HeadersTooLarge,
        Refusal::Internal,
        Refusal::BadGateway,
        Refusal::Unavailable,
    ];

    /// The error kinds answered with this response.
    fn kinds(self) -> &'static [ErrorKind] {
        match self {
            Refusal::BadRequest => &[ErrorKind::BadRequest, ErrorKind::KeyLimit],
            Refusal::Validation => &[ErrorKind::Validation],
            Refusal::Unauthorized => &[ErrorKind::Unauthorized],
            Refusal::PaymentRequired => &[ErrorKind::InsufficientCredits],
            Refusal::Forbidden => &[ErrorKind::Forbidden],
            Refusal::NotFound => &[ErrorKind::NotFound],
            Refusal::MethodNotAllowed => &[ErrorKind::MethodNotAllowed],
            Refusal::Conflict => &[ErrorKind::Conflict],
            Refusal::PayloadTooLarge => &[ErrorKind::PayloadTooLarge],
            Refusal::TooManyRequests => &[ErrorKind::RateLimited, ErrorKind::RequestLimit],
            Refusal::HeadersTooLarge => &[ErrorKind::HeadersTooLarge],
            Refusal::Internal => &[ErrorKind::Internal],
            Refusal::BadGateway => &[ErrorKind::BadGateway],
            Refusal::Unavailable => &[ErrorKind::Unavailable],
        }
    }

    /// Whether the profile answers this refusal with a response of its own:
    /// validation errors have one only with `[errors.validation]` at another
    /// status than 400; otherwise they are part of `BadRequest`.
    fn own_response(self, cfg: &Config) -> bool {
        self != Refusal::Validation || validation_status(cfg).is_some_and(|s| s != 400)
    }

    /// The response's name under `components.responses`.
    fn name(self, cfg: &Config) -> &'static str {
        match self {
            Refusal::Validation if self.own_response(cfg) => "ValidationFailed",
            Refusal::Validation | Refusal::BadRequest => "BadRequest",
            Refusal::Unauthorized => "Unauthorized",
            Refusal::PaymentRequired => "PaymentRequired",
            Refusal::Forbidden => "Forbidden",
            Refusal::NotFound => "NotFound",
            Refusal::MethodNotAllowed => "MethodNotAllowed",
            Refusal::Conflict => "Conflict",
            Refusal::PayloadTooLarge => "PayloadTooLarge",
            Refusal::TooManyRequests => "TooManyRequests",
            Refusal::HeadersTooLarge => "HeadersTooLarge",
            Refusal::Internal => "InternalError",
            Refusal::BadGateway => "BadGateway",
            Refusal::Unavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status.
    pub fn status(self, cfg: &Config) -> u16 {
        match self {
            Refusal::Validation => validation_status(cfg).unwrap_or(400),
            other => other.kinds().first().map_or(500, |k| k.status()),
        }
    }

    /// Headers of the response, by name in `components.headers`, and
    /// whether each is always sent.
    fn headers(self) -> &'static [(&'static str, bool)] {
        const RATE: [(&str, bool); 5] = [
            ("X-RateLimit-Limit", false),
            ("X-RateLimit-Remaining", false),
            ("X-RateLimit-Reset", false),
            ("RateLimit-Policy", false),
            ("RateLimit", false),
        ];
        match self {
            Refusal::Unauthorized => &[("WWW-Authenticate", false)],
            Refusal::PaymentRequired => &[
                ("Retry-After", false),
                (CREDITS_HEADER, false),
                RATE[0],
                RATE[1],
                RATE[2],
                RATE[3],
                RATE[4],
            ],
            Refusal::MethodNotAllowed => &[("Allow", true)],
            Refusal::TooManyRequests => &[
                ("Retry-After", false),
                RATE[0],
                RATE[1],
                RATE[2],
                RATE[3],
                RATE[4],
                (TOKEN_HEADER, false),
            ],
            Refusal::BadGateway => &[("Retry-After", true)],
            Refusal::Unavailable => &[("Retry-After", false)],
            _ => &[],
        }
    }
}

fn validation_status(cfg: &Config) -> Option<u16> {
    cfg.errors.validation().map(|v| v.status)
}

/// `{status: {"$ref": ...}}` for the refusals an operation can get.
pub fn refusals(cfg: &Config, which: &[Refusal]) -> Map<String, Value> {
    which
        .iter()
        .map(|r| {
            let target = format!("#/components/responses/{}", r.name(cfg));
            (r.status(cfg).to_string(), json!({"$ref": target}))
        })
        .collect()
}

/// `components.responses`: every refusal the profile answers with.
pub fn responses(cfg: &Config) -> Value {
    let out: Map<String, Value> = Refusal::ALL
        .into_iter()
        .filter(|r| r.own_response(cfg))
        .map(|r| (r.name(cfg).to_string(), response(cfg, r)))
        .collect();
    Value::Object(out)
}

fn response(cfg: &Config, r: Refusal) -> Value {
    // A request limit is a short-lived token's: only profiles with them.
    let mut kinds: Vec<ErrorKind> = r
        .kinds()
        .iter()
        .copied()
        .filter(|k| *k != ErrorKind::RequestLimit || cfg.short_lived.is_some())
        .collect();
    if r == Refusal::BadRequest && !Refusal::Validation.own_response(cfg) {
        kinds.push(ErrorKind::Validation);
    }
    let description = kinds
        .iter()
        .map(|k| format!("`{}`: {}", k.name(), cfg.errors.message(*k, &[])))
        .collect::<Vec<_>>()
        .join("; ");
    let headers: Map<String, Value> = r
        .headers()
        .iter()
        .filter(|(name, _)| *name != TOKEN_HEADER || cfg.short_lived.is_some())
        .map(|(name, required)| {
            let mut h = json!({"$ref": format!("#/components/headers/{name}")});
            if *required {
                h = json!({"required": true, "schema": {"type": "string"}, "description": header_description(name)});
            }
            (name.to_string(), h)
        })
        .collect();
    super::json_response(
        &format!("{} ({description})", r.status(cfg)),
        body_schema(cfg, r, &kinds),
        Value::Object(headers),
    )
}

/// The body: the error template's, or the validation template's, or either
/// (validation errors at 400 with their own template).
fn body_schema(cfg: &Config, r: Refusal, kinds: &[ErrorKind]) -> Value {
    let validation = cfg.errors.validation();
    if r == Refusal::Validation {
        return validation_schema(cfg).unwrap_or_else(|| json!({}));
    }
    let mut codes: Vec<&str> = Vec::new();
    for code in kinds.iter().map(|k| k.code()) {
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let details = match r {
        Refusal::PaymentRequired => Some(credit_details()),
        _ => Some(json!({"description": "structured details, when the error has any"})),
    };
    let p = Placeholders {
        codes,
        status: r.status(cfg),
        details,
        details_required: false,
    };
    let plain = template::schema(cfg.errors.body(), &p);
    match (r, validation) {
        (Refusal::BadRequest, Some(v)) if v.status == 400 => {
            json!({"oneOf": [plain, validation_schema(cfg).unwrap_or_else(|| json!({}))]})
        }
        _ => plain,
    }
}

/// A validation error's body: the validation template (or the error
/// template) with the list of problems as `{details}`.
fn validation_schema(cfg: &Config) -> Option<Value> {
    let v = cfg.errors.validation()?;
    let p = Placeholders {
        codes: vec![v.code.as_str()],
        status: v.status,
        details: Some(json!({"type": "array", "items": template::problem_schema(&v.item)})),
        details_required: true,
    };
    Some(template::schema(
        v.body.as_ref().unwrap_or(cfg.errors.body()),
        &p,
    ))
}

/// The details of a 402.
fn credit_details() -> Value {
    json!({
        "type": "object",
        "required": ["balance", "cost"],
        "properties": {
            "balance": {"type": "integer"},
            "cost": {"type": "integer"},
            "refillsInSeconds": {"type": "integer"},
        },
    })
}

fn header_description(name: &str) -> &'static str {
    match name {
        "Retry-After" => "seconds to wait before retrying",
        "X-RateLimit-Limit" => "the plan's requests per window",
        "X-RateLimit-Remaining" => "requests left in the bucket",
        "X-RateLimit-Reset" => "seconds until the bucket is full again",
        "RateLimit-Policy" => "IETF draft: \"<plan>\";q=<requests>;w=<window seconds>",
        "RateLimit" => "IETF draft: \"<plan>\";r=<remaining>;t=<seconds>",
        "WWW-Authenticate" => "the authentication scheme (Bearer)",
        "Allow" => "the methods the path answers",
        CREDITS_HEADER => "the credit balance after the request",
        TOKEN_HEADER => "a short-lived token's requests left",
        _ => "",
    }
}

/// `components.headers`.
pub fn headers() -> Value {
    let integer = [
        "Retry-After",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        CREDITS_HEADER,
        TOKEN_HEADER,
    ];
    let string = ["RateLimit-Policy", "RateLimit", "WWW-Authenticate", "Allow"];
    let mut out = Map::new();
    for (names, kind) in [(&integer[..], "integer"), (&string[..], "string")] {
        for name in names {
            out.insert(
                name.to_string(),
                json!({"description": header_description(name), "schema": {"type": kind}}),
            );
        }
    }
    Value::Object(out)
}

/// The headers of an admitted call (a success): the rate-limit headers and
/// any of `extra` (credits, a token's requests).
pub fn admitted_headers(extra: &[&str]) -> Value {
    let names = [
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "RateLimit-Policy",
        "RateLimit",
    ];
    let out: Map<String, Value> = names
        .iter()
        .chain(extra)
        .map(|n| {
            (
                n.to_string(),
                json!({"$ref": format!("#/components/headers/{n}")}),
            )
        })
        .collect();
    Value::Object(out)
}
