//! Reading and parsing JSON request bodies for management endpoints.

use crate::reply::{ApiError, ErrorKind};
use pingora::protocols::http::ServerSession;
use serde::de::DeserializeOwned;

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

/// Parses a JSON body; an empty body parses as `{}`. Errors name the field.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." || path.is_empty() {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body: field {path}: {inner}")
        };
        ApiError::detail(ErrorKind::BadRequest, msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

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
}
