//! Checks on the request's shape that run before anything is metered: a
//! request that fails one is refused with 400 and costs nothing.
//!
//! - method names are case-sensitive: `get` is not `GET`, and some origins
//!   would still read it as `GET`, so it would skip method-limited routes;
//! - a `Connection` header may not name a header tollgate owns or vouches
//!   for (a hop-by-hop list that an intermediary would use to drop them);
//! - protocol upgrades pass only on routes that opt in (`upgrade = true`);
//! - on a plan with query policies, a request body or matrix parameters
//!   could carry the same parameters past them, so such plans take neither.

use super::protected;
use crate::metering::Plan;
use crate::reply::{ApiError, ErrorKind};
use crate::routing::Route;
use http::HeaderMap;
use pingora::http::RequestHeader;

fn bad_request(detail: impl Into<String>) -> ApiError {
    ApiError::detail(ErrorKind::BadRequest, detail.into())
}

/// Refuses a method name with lower-case letters.
pub fn method(method: &http::Method) -> Result<(), ApiError> {
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(bad_request(format!(
            "method names are case-sensitive: {:?} is not a method here; use {:?}",
            method.as_str(),
            method.as_str().to_ascii_uppercase()
        )));
    }
    Ok(())
}

/// The most options a `Connection` header may name (Pingora refuses more,
/// after the request would have been metered).
const MAX_NOMINATIONS: usize = 9;

/// RFC 9110 `tchar`: the characters of a header name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Refuses a `Connection` header that names a protected header.
pub fn connection(headers: &HeaderMap, client_ip: Option<&str>) -> Result<(), ApiError> {
    let mut nominations = 0;
    for value in headers.get_all(http::header::CONNECTION) {
        let Ok(value) = value.to_str() else {
            return Err(bad_request("the Connection header is not ASCII"));
        };
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            nominations += 1;
            if nominations > MAX_NOMINATIONS {
                return Err(bad_request(format!(
                    "the Connection header may name at most {MAX_NOMINATIONS} options"
                )));
            }
            // A header name is a token; anything else (a quoted name) is not a
            // name tollgate or the origin could agree on.
            if !token.bytes().all(is_tchar) {
                return Err(bad_request(format!(
                    "the Connection header has {token:?}, which is not a header name"
                )));
            }
            let named = protected::classify(token, client_ip).is_some()
                || protected::loose_eq(token, "host");
            if named {
                return Err(bad_request(format!(
                    "the Connection header may not name {token:?}"
                )));
            }
        }
    }
    Ok(())
}

/// Whether the request asks to switch protocols.
fn upgrade_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::UPGRADE)
        .map(|v| v.to_str().unwrap_or("?"))
}

/// Refuses an upgrade on a route that has not opted in. An `h2c` upgrade
/// (a client offering HTTP/2 over plain TCP) is ignored instead, as servers
/// may: the request is served as HTTP/1.1.
pub fn upgrade(req: &mut RequestHeader, route: &Route) -> Result<(), ApiError> {
    let Some(proto) = upgrade_of(&req.headers) else {
        return Ok(());
    };
    if route.upgrade {
        return Ok(());
    }
    if proto.trim().eq_ignore_ascii_case("h2c") {
        req.remove_header(&http::header::UPGRADE);
        req.remove_header("http2-settings");
        return Ok(());
    }
    Err(bad_request(format!(
        "protocol upgrades ({proto}) are not enabled on this endpoint"
    )))
}

/// Whether the request carries a body.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes().iter().any(|&b| b != b'0'))
}

/// Refuses a body on a request that must not have one (`what` names it).
pub fn no_body(headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    if has_body(headers) {
        return Err(bad_request(format!("{what} has no body")));
    }
    Ok(())
}

/// On a plan with query policies (a result cap, no pagination), refuses what
/// could carry the same parameters past them: a request body, and matrix
/// parameters in the path (`/entries;limit=50`, read by Spring's
/// `@MatrixVariable` and JAX-RS `@MatrixParam`).
pub fn plan_parameters(
    headers: &HeaderMap,
    canonical_path: &str,
    plan: &Plan,
) -> Result<(), ApiError> {
    if plan.max_results.is_none() && plan.pagination {
        return Ok(());
    }
    if has_body(headers) {
        return Err(bad_request(format!(
            "request bodies are not accepted on the {} plan: pass parameters in the query",
            plan.name
        )));
    }
    if canonical_path.contains(';') {
        return Err(bad_request(format!(
            "';' is not allowed in the path on the {} plan: pass parameters in the query",
            plan.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert!(method(&http::Method::GET).is_ok());
        assert!(method(&http::Method::from_bytes(b"PURGE").expect("m")).is_ok());
        assert!(method(&http::Method::from_bytes(b"get").expect("m")).is_err());
        assert!(method(&http::Method::from_bytes(b"Post").expect("m")).is_err());
    }

    #[test]
    fn connection_may_not_name_protected_headers() {
        let cf = Some("cf-connecting-ip");
        assert!(connection(&headers(&[("connection", "keep-alive, Upgrade")]), cf).is_ok());
        for v in [
            "close, X-Tollgate-Account",
            "x_tollgate_plan",
            "keep-alive, authorization",
            "X-Forwarded-For",
            "CF-Connecting-IP",
            "host",
            "\"x-tollgate-account\"",
            "X-Forwarded-Host",
            "x-forwarded-proto",
            ":authority",
            "a, b, c, d, e, f, g, h, i, j",
            "close, \"keep-alive\"",
        ] {
            assert!(
                connection(&headers(&[("connection", v)]), cf).is_err(),
                "{v}"
            );
        }
    }

    #[test]
    fn bodies_are_detected() {
        assert!(!has_body(&headers(&[("content-length", "0")])));
        assert!(!has_body(&headers(&[])));
        assert!(has_body(&headers(&[("content-length", "12")])));
        assert!(has_body(&headers(&[("transfer-encoding", "chunked")])));
    }
}
