//! Path normalisation and the route table.
//!
//! A request path is percent-decoded, its dot segments resolved and duplicate
//! slashes collapsed *before* it is matched, and the origin receives exactly the
//! canonical path that was matched. Anything ambiguous (an encoded slash or
//! backslash, a control byte, bad percent-encoding, non-UTF-8, `..` above the
//! root) is refused with 400 rather than guessed at.

use http::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use std::sync::Arc;
use thiserror::Error;

/// Why a path was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("the request target must be an absolute path")]
    NotAbsolute,
    #[error("the path has invalid percent-encoding")]
    BadEncoding,
    #[error("the path has an encoded slash or a backslash")]
    AmbiguousSeparator,
    #[error("the path has a control character")]
    Control,
    #[error("the path is not valid UTF-8")]
    NotUtf8,
    #[error("the path climbs above the root")]
    AboveRoot,
    #[error("the path has a segment that some servers read as a dot segment")]
    AmbiguousDots,
}

/// A normalised request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// Decoded segments, no empty ones, no dot segments.
    pub segments: Vec<String>,
    /// The canonical, percent-encoded path sent upstream (with a trailing slash if the request had one).
    pub canonical: String,
    /// The raw query string, without `?`, if any.
    pub query: Option<String>,
}

impl NormalPath {
    /// The canonical path with the query, as sent upstream.
    pub fn upstream_target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.canonical, q),
            None => self.canonical.clone(),
        }
    }
}

/// Characters escaped when a decoded segment is written back into a path.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_segment(raw: &[u8]) -> Result<String, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = match raw[i] {
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex);
                let lo = raw.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => {
                        i += 2;
                        let d = h * 16 + l;
                        if d == b'/' {
                            return Err(PathError::AmbiguousSeparator);
                        }
                        d
                    }
                    _ => return Err(PathError::BadEncoding),
                }
            }
            b => b,
        };
        if b == b'\\' {
            return Err(PathError::AmbiguousSeparator);
        }
        if b < 0x20 || b == 0x7f {
            return Err(PathError::Control);
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// Normalises a raw request target (`/path?query`).
pub fn normalize(target: &[u8]) -> Result<NormalPath, PathError> {
    if target.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], Some(&target[q + 1..])),
        None => (target, None),
    };
    if path.contains(&b'#') {
        return Err(PathError::BadEncoding);
    }
    let mut segments: Vec<String> = Vec::new();
    let raw_segments: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    let last = raw_segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (idx, raw) in raw_segments.iter().enumerate() {
        let seg = decode_segment(raw)?;
        // `..;x`, `.. `, `...`: read as `..` by some servers (path parameters,
        // trailing dots and spaces trimmed); never guessed.
        if seg != "." && seg != ".." {
            let core = seg.split(';').next().unwrap_or("");
            let trimmed = seg.trim_end_matches(['.', ' ']);
            if core == "." || core == ".." || (trimmed.is_empty() && seg.contains('.')) {
                return Err(PathError::AmbiguousDots);
            }
        }
        match seg.as_str() {
            "" => {}
            "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            _ => segments.push(seg),
        }
        if idx == last {
            trailing_slash = raw.is_empty() || matches!(decode_segment(raw)?.as_str(), "." | "..");
        }
    }
    let mut canonical = String::with_capacity(path.len());
    for seg in &segments {
        canonical.push('/');
        canonical.extend(utf8_percent_encode(seg, SEGMENT));
    }
    if canonical.is_empty() || trailing_slash {
        canonical.push('/');
    }
    let query = match query {
        Some(q) => Some(
            std::str::from_utf8(q)
                .map_err(|_| PathError::NotUtf8)?
                .to_string(),
        ),
        None => None,
    };
    if let Some(q) = &query {
        if q.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'#') {
            return Err(PathError::Control);
        }
    }
    Ok(NormalPath {
        segments,
        canonical,
        query,
    })
}

/// How a route admits callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential read, nothing metered.
    Public,
    /// A credential is optional; without one the caller is metered per client IP.
    Anonymous,
    /// A credential is required.
    Key,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param,
    Rest,
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segs: Vec<Seg>,
}

impl Pattern {
    /// Compiles `/a/{b}/c` or `/a/*`; `*` may only be the last segment.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("{text:?} must start with '/'"));
        }
        let parts: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
        let mut segs = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            if *p == "*" {
                if i + 1 != parts.len() {
                    return Err(format!("{text:?}: '*' may only be the last segment"));
                }
                segs.push(Seg::Rest);
            } else if p.starts_with('{') && p.ends_with('}') && p.len() > 2 {
                segs.push(Seg::Param);
            } else if p.contains(['{', '}', '*', '%', '?', '#']) || *p == "." || *p == ".." {
                return Err(format!(
                    "{text:?}: segment {p:?} is not a literal, {{name}} or *"
                ));
            } else {
                segs.push(Seg::Lit((*p).to_string()));
            }
        }
        Ok(Self { segs })
    }

    /// Whether the decoded segments match.
    pub fn matches(&self, segments: &[String]) -> bool {
        let mut i = 0;
        for seg in &self.segs {
            match seg {
                Seg::Rest => return true,
                Seg::Param => {
                    if i >= segments.len() {
                        return false;
                    }
                }
                Seg::Lit(l) => {
                    if segments.get(i) != Some(l) {
                        return false;
                    }
                }
            }
            i += 1;
        }
        i == segments.len()
    }
}

/// What a route does while the shared store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    /// Answer 503 with `Retry-After`.
    FailClosed,
    /// Decide with a per-instance limiter and cached key records.
    FailOpen,
}

/// A route: patterns and methods to an origin, with an access mode.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub patterns: Vec<Pattern>,
    /// Empty: every method.
    pub methods: Vec<Method>,
    pub access: Access,
    pub origin: String,
    /// Credits one call costs.
    pub cost: u64,
    /// Plans allowed here; empty: every plan.
    pub plans: Vec<String>,
    pub on_store_failure: StoreFailure,
}

/// Result of matching a request.
#[derive(Debug)]
pub enum RouteMatch {
    Found(Arc<Route>),
    /// The path is known, the method is not; carries the allowed methods.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// Routes in file order; the first whose pattern and method match wins.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Builds the table from routes in priority order.
    pub fn new(routes: Vec<Route>) -> Self {
        Self {
            routes: routes.into_iter().map(Arc::new).collect(),
        }
    }

    /// All routes, in order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Finds the route for a method and normalised path.
    pub fn find(&self, method: &Method, path: &NormalPath) -> RouteMatch {
        let mut allowed: Vec<Method> = Vec::new();
        for route in &self.routes {
            if !route.patterns.iter().any(|p| p.matches(&path.segments)) {
                continue;
            }
            let head_as_get = *method == Method::HEAD && route.methods.contains(&Method::GET);
            if route.methods.is_empty() || route.methods.contains(method) || head_as_get {
                return RouteMatch::Found(route.clone());
            }
            allowed.extend(route.methods.iter().cloned());
        }
        if allowed.is_empty() {
            RouteMatch::NotFound
        } else {
            allowed.dedup();
            RouteMatch::MethodNotAllowed(allowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(p: &str) -> Result<String, PathError> {
        normalize(p.as_bytes()).map(|n| n.canonical)
    }

    #[test]
    fn resolves_dots_and_slashes() {
        assert_eq!(canon("/api//markets"), Ok("/api/markets".into()));
        assert_eq!(canon("/api/health/../markets"), Ok("/api/markets".into()));
        assert_eq!(
            canon("/api/health/%2e%2e/markets"),
            Ok("/api/markets".into())
        );
        assert_eq!(canon("/api/./klines"), Ok("/api/klines".into()));
        assert_eq!(canon("/docs/"), Ok("/docs/".into()));
        assert_eq!(canon("/"), Ok("/".into()));
        assert_eq!(canon("/a/%7Eb"), Ok("/a/~b".into()));
        assert_eq!(canon("/a/b%20c"), Ok("/a/b%20c".into()));
    }

    #[test]
    fn refuses_ambiguity() {
        assert_eq!(
            canon("/api/health%2f..%2fmarkets"),
            Err(PathError::AmbiguousSeparator)
        );
        assert_eq!(canon("/api\\markets"), Err(PathError::AmbiguousSeparator));
        assert_eq!(canon("/api/%5cmarkets"), Err(PathError::AmbiguousSeparator));
        assert_eq!(canon("/api/%zz"), Err(PathError::BadEncoding));
        assert_eq!(canon("/api/%0a"), Err(PathError::Control));
        assert_eq!(canon("/api/%ff"), Err(PathError::NotUtf8));
        assert_eq!(
            canon("/docs/..;/api/markets"),
            Err(PathError::AmbiguousDots)
        );
        assert_eq!(canon("/docs/.;x/api"), Err(PathError::AmbiguousDots));
        assert_eq!(
            canon("/docs/..%20/api/markets"),
            Err(PathError::AmbiguousDots)
        );
        assert_eq!(canon("/docs/.../api"), Err(PathError::AmbiguousDots));
        assert_eq!(canon("/api/a;b"), Ok("/api/a;b".into()));
        assert_eq!(canon("/api/search/%20"), Ok("/api/search/%20".into()));
        assert_eq!(canon("/.."), Err(PathError::AboveRoot));
        assert_eq!(canon("api"), Err(PathError::NotAbsolute));
        assert!(normalize(b"/api/\xff").is_err());
    }

    #[test]
    fn keeps_query() {
        let n = normalize(b"/api/klines?limit=5&x=%2F").expect("valid");
        assert_eq!(n.query.as_deref(), Some("limit=5&x=%2F"));
        assert_eq!(n.segments, vec!["api", "klines"]);
    }

    #[test]
    fn patterns_match() {
        let p = Pattern::parse("/api/markets/{venue}/symbols").expect("valid");
        let seg = |s: &str| normalize(s.as_bytes()).expect("valid").segments;
        assert!(p.matches(&seg("/api/markets/binance/symbols")));
        assert!(!p.matches(&seg("/api/markets/binance")));
        let rest = Pattern::parse("/api/*").expect("valid");
        assert!(rest.matches(&seg("/api/x/y")));
        assert!(rest.matches(&seg("/api")));
        assert!(Pattern::parse("/a/*/b").is_err());
        assert!(Pattern::parse("/a/..").is_err());
    }

    #[test]
    fn table_order_and_methods() {
        let r = |name: &str, path: &str, methods: Vec<Method>, access| Route {
            name: name.into(),
            patterns: vec![Pattern::parse(path).expect("valid")],
            methods,
            access,
            origin: "o".into(),
            cost: 1,
            plans: Vec::new(),
            on_store_failure: StoreFailure::FailClosed,
        };
        let t = RouteTable::new(vec![
            r("health", "/api/health", vec![Method::GET], Access::Public),
            r("api", "/api/*", vec![], Access::Anonymous),
        ]);
        let n = normalize(b"/api/health").expect("valid");
        assert!(matches!(t.find(&Method::GET, &n), RouteMatch::Found(r) if r.name == "health"));
        assert!(matches!(t.find(&Method::HEAD, &n), RouteMatch::Found(r) if r.name == "health"));
        assert!(matches!(t.find(&Method::POST, &n), RouteMatch::Found(r) if r.name == "api"));
        let n = normalize(b"/other").expect("valid");
        assert!(matches!(t.find(&Method::GET, &n), RouteMatch::NotFound));
    }
}
