//! What a request is for, resolved once from its method and normalised path:
//! one of tollgate's own endpoints, or a route to the origin. Every 404, 405
//! and ambiguous-path 400 is decided here.

use crate::config::Config;
use crate::management::short_lived::{self, TokenEndpoint};
use crate::reply::{ApiError, ErrorKind};
use crate::routing::{self, NormalPath, Route, RouteMatch};
use http::Method;
use std::sync::Arc;

/// A request's endpoint.
#[derive(Debug)]
pub enum Endpoint {
    /// The public trial-key endpoint.
    Trial,
    /// A short-lived token endpoint.
    ShortLived(TokenEndpoint),
    /// Self-service key management; the path after the endpoint's own.
    SelfService(String),
    /// A route to the origin.
    Route(Arc<Route>),
}

impl Endpoint {
    /// The metrics label of one of tollgate's own endpoints (routes use their name).
    pub fn label(&self) -> Option<&'static str> {
        match self {
            Endpoint::Trial => Some("trial"),
            Endpoint::ShortLived(_) => Some("short_lived"),
            Endpoint::SelfService(_) => Some("self_service"),
            Endpoint::Route(_) => None,
        }
    }
}

/// The 400 for a path that a lenient server could read as another endpoint.
fn ambiguous() -> ApiError {
    ApiError::detail(
        ErrorKind::BadRequest,
        "ambiguous path: a server could read it as a different endpoint; use the documented \
         spelling (letter case, no ';' parameters, no trailing dots or spaces)",
    )
}

/// Whether `path` is one of tollgate's own endpoints, compared exactly or,
/// with `loose`, as lenient servers compare ([`routing::loose_path`]).
fn is_management(cfg: &Config, path: &str, loose: bool) -> bool {
    let read = |p: &str| {
        if loose {
            routing::loose_path(p)
        } else {
            p.to_string()
        }
    };
    let path = read(path);
    let under = |base: &str| {
        let base = read(base);
        let base = base.trim_end_matches('/');
        path == base || path.strip_prefix(base).is_some_and(|r| r.starts_with('/'))
    };
    cfg.trial.as_ref().is_some_and(|t| under(&t.path))
        || cfg
            .short_lived
            .as_ref()
            .is_some_and(|s| under(&s.tokens_path) || under(&s.inspect_path))
        || cfg.self_service.as_ref().is_some_and(|s| under(&s.path))
}

/// One of tollgate's own endpoints, matched exactly.
fn management(cfg: &Config, path: &NormalPath) -> Option<Endpoint> {
    if cfg.trial.as_ref().is_some_and(|t| path.canonical == t.path) {
        return Some(Endpoint::Trial);
    }
    if let Some(e) = cfg
        .short_lived
        .as_ref()
        .and_then(|s| short_lived::endpoint(s, &path.canonical))
    {
        return Some(Endpoint::ShortLived(e));
    }
    let ss = cfg.self_service.as_ref()?;
    let rest = path.canonical.strip_prefix(ss.path.as_str())?;
    (rest.is_empty() || rest.starts_with('/'))
        .then(|| Endpoint::SelfService(rest.trim_start_matches('/').to_string()))
}

/// Resolves a request's endpoint, or the 400/404/405 that answers it.
pub fn resolve(cfg: &Config, method: &Method, path: &NormalPath) -> Result<Endpoint, ApiError> {
    if let Some(loose) = path.loose_path() {
        if is_management(cfg, &loose, true) && !is_management(cfg, &path.canonical, false) {
            return Err(ambiguous());
        }
    }
    if let Some(endpoint) = management(cfg, path) {
        return Ok(endpoint);
    }
    match cfg.routes.find(method, path) {
        RouteMatch::Found(route) => Ok(Endpoint::Route(route)),
        RouteMatch::NotFound => Err(ApiError::detail(
            ErrorKind::NotFound,
            format!("no route for {}", path.canonical),
        )),
        RouteMatch::Ambiguous(other) => {
            log::debug!("path {} could be read as route {other:?}", path.canonical);
            Err(ambiguous())
        }
        RouteMatch::MethodNotAllowed(allowed) => {
            let allow = allowed
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            Err(ApiError::new(ErrorKind::MethodNotAllowed).header("Allow", allow))
        }
    }
}
