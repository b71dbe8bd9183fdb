//! CORS at the edge: the request's `Origin` read once, preflights recognised
//! and resolved as the request they announce, tollgate's own answers to them,
//! and the CORS headers of every response (tollgate's own and the origin's).
//!
//! A request without `Origin` costs one header lookup; a profile without any
//! CORS never looks for preflights.

use super::endpoint::{self, Endpoint};
use crate::config::Config;
use crate::cors::Cors;
use crate::reply::{ApiError, ErrorKind, Reply};
use crate::routing::NormalPath;
use http::{HeaderName, Method};
use pingora::http::{RequestHeader, ResponseHeader};

/// `Access-Control-Request-Method`: what makes an `OPTIONS` a preflight.
const REQUEST_METHOD: &str = "access-control-request-method";

/// One request's CORS: its `Origin`, the mode of the endpoint it is for (the
/// global policy until that is known), and the `Access-Control-Allow-Origin`
/// it gets when its origin is allowed.
#[derive(Debug, Default)]
pub struct CorsState {
    /// The `Origin` header; several headers are kept as an empty origin,
    /// which no list matches.
    origin: Option<String>,
    mode: Cors,
    allow: Option<String>,
}

impl CorsState {
    /// Reads the request's `Origin` and applies `mode`.
    pub fn new(req: &RequestHeader, mode: &Cors) -> Self {
        let mut values = req.headers.get_all(http::header::ORIGIN).iter();
        let origin = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(v), None) => Some(v.to_str().unwrap_or_default().to_string()),
            (Some(_), Some(_)) => Some(String::new()),
        };
        let mut state = Self {
            origin,
            mode: Cors::Off,
            allow: None,
        };
        state.enter(mode);
        state
    }

    /// Applies the mode of the endpoint the request turned out to be for.
    pub fn enter(&mut self, mode: &Cors) {
        self.mode = mode.clone();
        self.allow = match (&self.mode, &self.origin) {
            (Cors::Policy(policy), Some(origin)) => policy.allow_origin(origin),
            _ => None,
        };
    }

    /// Adds the CORS headers to a reply tollgate writes itself: `Vary:
    /// Origin` wherever tollgate handles CORS, and the allow headers when the
    /// origin is allowed.
    pub fn decorate(&self, reply: &mut Reply) {
        let Cors::Policy(policy) = &self.mode else {
            return;
        };
        reply.headers.push(("Vary".into(), "Origin".into()));
        if let Some(allow) = &self.allow {
            for (name, value) in policy.response_headers(allow) {
                reply.headers.push((name.into(), value.into()));
            }
        }
    }

    /// The origin's response, where tollgate handles CORS: the origin's
    /// `Access-Control-*` headers are replaced by the policy's, and `Origin`
    /// joins `Vary`. Elsewhere it is left as it is.
    pub fn rewrite(&self, response: &mut ResponseHeader) -> pingora::Result<()> {
        let Cors::Policy(policy) = &self.mode else {
            return Ok(());
        };
        let theirs: Vec<HeaderName> = response
            .headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in theirs {
            response.remove_header(&name);
        }
        let varies = response
            .headers
            .get_all(http::header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("origin"));
        if !varies {
            response.append_header("Vary", "Origin")?;
        }
        if let Some(allow) = &self.allow {
            for (name, value) in policy.response_headers(allow) {
                response.insert_header(name, value)?;
            }
        }
        Ok(())
    }

    /// tollgate's answer to a preflight for an endpoint whose CORS it
    /// handles: 204 with the methods, headers and max age the policy allows
    /// ([`Self::decorate`] adds the rest), or a 403 without CORS headers for
    /// an origin it does not allow.
    pub fn preflight(&self) -> Result<Reply, ApiError> {
        let (Cors::Policy(policy), Some(_)) = (&self.mode, &self.allow) else {
            let origin = self.origin.as_deref().unwrap_or_default();
            return Err(ApiError::detail(
                ErrorKind::Forbidden,
                format!("origin {origin:?} is not allowed to call this API from a browser"),
            ));
        };
        let mut reply = Reply {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        };
        for (name, value) in policy.preflight_headers() {
            reply.headers.push((name.into(), value.into()));
        }
        Ok(reply)
    }
}

/// The method a preflight announces: for an `OPTIONS` with `Origin` and a
/// valid `Access-Control-Request-Method`, when any endpoint takes part in CORS.
pub fn announced_method(cfg: &Config, req: &RequestHeader, state: &CorsState) -> Option<Method> {
    if !cfg.cors.enabled || req.method != Method::OPTIONS || state.origin.is_none() {
        return None;
    }
    let value = req.headers.get(REQUEST_METHOD)?;
    Method::from_bytes(value.as_bytes()).ok()
}

/// How an endpoint takes part in CORS.
pub fn mode_of<'a>(cfg: &'a Config, endpoint: &'a Endpoint) -> &'a Cors {
    match endpoint {
        Endpoint::Route(route) => &route.cors,
        Endpoint::Trial => &cfg.cors.trial,
        Endpoint::ShortLived(_) => &cfg.cors.short_lived,
        Endpoint::SelfService(_) => &cfg.cors.self_service,
    }
}

/// Resolves a request's endpoint ([`endpoint::resolve`]). A preflight
/// (`announced` is its method) resolves as the request it announces; if that
/// endpoint takes no part in CORS, the `OPTIONS` is resolved and handled like
/// any other request. The flag says whether the request is a preflight.
pub fn resolve(
    cfg: &Config,
    method: &Method,
    path: &NormalPath,
    announced: Option<Method>,
) -> (Result<Endpoint, ApiError>, bool) {
    let Some(announced) = announced else {
        return (endpoint::resolve(cfg, method, path), false);
    };
    match endpoint::resolve(cfg, &announced, path) {
        Ok(found) if mode_of(cfg, &found).is_on() => (Ok(found), true),
        Ok(_) => (endpoint::resolve(cfg, method, path), false),
        Err(err) => (Err(err), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cors::{AllowedOrigins, CorsPolicy, CorsRules, OriginPattern};
    use std::sync::Arc;

    fn policy() -> Cors {
        Cors::Policy(Arc::new(CorsPolicy::new(CorsRules {
            origins: AllowedOrigins::List(vec![
                OriginPattern::parse("https://app.example.com").expect("valid")
            ]),
            ..CorsRules::default()
        })))
    }

    fn state(origin: Option<&str>, mode: &Cors) -> CorsState {
        let mut req = RequestHeader::build("GET", b"/api", None).expect("request");
        if let Some(o) = origin {
            req.insert_header("origin", o).expect("origin");
        }
        CorsState::new(&req, mode)
    }

    fn response(headers: &[(&'static str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).expect("response");
        for (k, v) in headers {
            r.append_header(*k, *v).expect("header");
        }
        r
    }

    fn values<'a>(r: &'a ResponseHeader, name: &str) -> Vec<&'a str> {
        r.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    #[test]
    fn the_origins_cors_headers_are_replaced_and_vary_joined() {
        let s = state(Some("https://app.example.com"), &policy());
        let mut r = response(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("vary", "Accept-Encoding"),
        ]);
        s.rewrite(&mut r).expect("rewrite");
        assert_eq!(
            values(&r, "access-control-allow-origin"),
            ["https://app.example.com"]
        );
        assert!(values(&r, "access-control-allow-credentials").is_empty());
        assert_eq!(values(&r, "vary"), ["Accept-Encoding", "Origin"]);
        // Already varying on Origin (or on everything): not added twice.
        for vary in ["origin", "Accept-Encoding, Origin", "*"] {
            let mut r = response(&[("vary", vary)]);
            s.rewrite(&mut r).expect("rewrite");
            assert_eq!(values(&r, "vary"), [vary]);
        }
    }

    #[test]
    fn other_modes_leave_the_response_alone() {
        for mode in [Cors::Off, Cors::Origin] {
            let s = state(Some("https://app.example.com"), &mode);
            let mut r = response(&[("access-control-allow-origin", "*")]);
            s.rewrite(&mut r).expect("rewrite");
            assert_eq!(values(&r, "access-control-allow-origin"), ["*"]);
            assert!(values(&r, "vary").is_empty());
        }
    }

    #[test]
    fn preflights_from_other_origins_are_refused() {
        let s = state(Some("https://evil.example.com"), &policy());
        assert_eq!(
            s.preflight().expect_err("refused").kind,
            ErrorKind::Forbidden
        );
        let mut reply = Reply::json(403, &serde_json::json!({}));
        s.decorate(&mut reply);
        assert_eq!(reply.headers, [("Vary".to_string(), "Origin".to_string())]);
        let s = state(Some("https://app.example.com"), &policy());
        let reply = s.preflight().expect("answered");
        assert_eq!(reply.status, 204);
        assert!(reply.body.is_empty());
    }
}
