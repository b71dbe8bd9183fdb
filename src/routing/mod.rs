//! The route table: routes in file order, matched on the normalised path
//! ([`path`]), and refused when a lenient origin could read the path as
//! another route.

pub mod path;

pub use path::{loose_path, loose_segment, normalize, NormalPath, PathError};

use crate::cors::Cors;
use http::Method;
use std::sync::Arc;

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
    /// A literal segment and its loose reading.
    Lit(String, String),
    Param,
    Rest,
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segs: Vec<Seg>,
    /// The pattern as configured, for documentation.
    text: String,
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
                segs.push(Seg::Lit((*p).to_string(), loose_segment(p).into_owned()));
            }
        }
        Ok(Self {
            segs,
            text: text.to_string(),
        })
    }

    /// The pattern as configured (`/a/{b}/c`, `/a/*`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the decoded segments match.
    pub fn matches(&self, segments: &[String]) -> bool {
        self.matches_as(segments, false)
    }

    /// Whether the pattern has a literal that its loose reading changes.
    fn has_strict_literal(&self) -> bool {
        self.segs
            .iter()
            .any(|s| matches!(s, Seg::Lit(exact, loose) if exact != loose))
    }

    /// Matches exact segments against exact literals, or loose segments
    /// against loose literals.
    fn matches_as(&self, segments: &[String], loose: bool) -> bool {
        let mut i = 0;
        for seg in &self.segs {
            match seg {
                Seg::Rest => return true,
                Seg::Param => {
                    if i >= segments.len() {
                        return false;
                    }
                }
                Seg::Lit(exact, loose_lit) => {
                    let l = if loose { loose_lit } else { exact };
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
    /// Whether a protocol upgrade (`Upgrade: websocket`) may pass: admitted
    /// and charged as one call when it starts, then an unmetered tunnel.
    pub upgrade: bool,
    /// How the route takes part in CORS (`inherit` resolved).
    pub cors: Cors,
}

/// Result of matching a request.
#[derive(Debug)]
pub enum RouteMatch {
    Found(Arc<Route>),
    /// The path is known, the method is not; carries the allowed methods.
    MethodNotAllowed(Vec<Method>),
    NotFound,
    /// The path matches `Found` exactly, but a server that drops `;params`,
    /// ignores case or trims trailing dots and spaces would read it as
    /// another route (named here): refused rather than guessed.
    Ambiguous(String),
}

/// Routes in file order; the first whose pattern and method match wins.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    /// Some literal differs from its loose reading (upper case, `;`, trailing dot).
    strict_literals: bool,
}

impl RouteTable {
    /// Builds the table from routes in priority order.
    pub fn new(routes: Vec<Route>) -> Self {
        let strict_literals = routes
            .iter()
            .any(|r| r.patterns.iter().any(Pattern::has_strict_literal));
        Self {
            routes: routes.into_iter().map(Arc::new).collect(),
            strict_literals,
        }
    }

    /// All routes, in order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Finds the route for a method and normalised path, refusing a path
    /// whose loose reading would pick a different route.
    pub fn find(&self, method: &Method, path: &NormalPath) -> RouteMatch {
        let found = self.find_as(method, &path.segments, false);
        if let RouteMatch::Found(route) = &found {
            if path.loose.is_some() || self.strict_literals {
                match self.find_as(method, path.loose_segments(), true) {
                    RouteMatch::Found(other) if Arc::ptr_eq(&other, route) => {}
                    RouteMatch::Found(other) => return RouteMatch::Ambiguous(other.name.clone()),
                    _ => return RouteMatch::Ambiguous(String::new()),
                }
            }
        }
        found
    }

    fn find_as(&self, method: &Method, segments: &[String], loose: bool) -> RouteMatch {
        let mut allowed: Vec<Method> = Vec::new();
        for route in &self.routes {
            if !route.patterns.iter().any(|p| p.matches_as(segments, loose)) {
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
    use proptest::prelude::*;

    fn route(name: &str, path: &str) -> Route {
        Route {
            name: name.into(),
            patterns: vec![Pattern::parse(path).expect("valid")],
            methods: Vec::new(),
            access: Access::Key,
            origin: "o".into(),
            cost: 1,
            plans: Vec::new(),
            on_store_failure: StoreFailure::FailClosed,
            upgrade: false,
            cors: Cors::Off,
        }
    }

    fn name_of(m: RouteMatch) -> String {
        match m {
            RouteMatch::Found(r) => r.name.clone(),
            RouteMatch::NotFound => "404".into(),
            RouteMatch::MethodNotAllowed(_) => "405".into(),
            RouteMatch::Ambiguous(n) => format!("ambiguous:{n}"),
        }
    }

    /// One way to spell a segment: as is, or with unreserved characters
    /// percent-encoded, preceded by `./`, `//` or `x/../`.
    fn spell(seg: &str, how: u8) -> String {
        let encoded: String = seg.bytes().map(|b| format!("%{b:02X}")).collect();
        match how % 5 {
            0 => seg.to_string(),
            1 => encoded,
            2 => format!("./{seg}"),
            3 => format!("/{seg}"),
            _ => format!("zz/../{seg}"),
        }
    }

    proptest! {
        #[test]
        fn equivalent_spellings_match_the_same_route(
            segs in prop::collection::vec("[a-z0-9]{1,3}", 1..5),
            hows in prop::collection::vec(any::<u8>(), 5),
        ) {
            let t = RouteTable::new(vec![
                route("exact", &format!("/{}", segs.join("/"))),
                route("first", &format!("/{}/*", segs[0])),
                route("rest", "/*"),
            ]);
            let plain = normalize(format!("/{}", segs.join("/")).as_bytes()).expect("valid");
            let spelled: Vec<String> = segs
                .iter()
                .zip(hows.iter())
                .map(|(s, h)| spell(s, *h))
                .collect();
            let other = normalize(format!("/{}", spelled.join("/")).as_bytes()).expect("valid");
            prop_assert_eq!(&other.canonical, &plain.canonical);
            prop_assert_eq!(
                name_of(t.find(&Method::GET, &other)),
                name_of(t.find(&Method::GET, &plain))
            );
        }
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
            upgrade: false,
            cors: Cors::Off,
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

    #[test]
    fn loose_spellings_of_another_route_are_ambiguous() {
        let r = route;
        let t = RouteTable::new(vec![r("sec", "/api/v1/sec/*"), r("data", "/*")]);
        let find = |p: &str| t.find(&Method::GET, &normalize(p.as_bytes()).expect("valid"));
        assert!(matches!(find("/api/v1/sec/filings"), RouteMatch::Found(r) if r.name == "sec"));
        assert!(matches!(find("/api/v1/markets;x"), RouteMatch::Found(r) if r.name == "data"));
        assert!(matches!(find("/API/v1/markets"), RouteMatch::Found(r) if r.name == "data"));
        for p in [
            "/api/v1/sec;x/filings",
            "/api/v1/sec%3Bx/filings",
            "/api/v1/SEC/filings",
            "/api/v1/sec./filings",
            "/api/v1/sec%2e/filings",
            "/api/v1/sec%20/filings",
            "/Api/V1/Sec/filings",
        ] {
            assert!(
                matches!(find(p), RouteMatch::Ambiguous(ref n) if n == "sec"),
                "{p}"
            );
        }
        // An upper-case literal: its lower-case spelling is ambiguous too.
        let t = RouteTable::new(vec![r("upper", "/api/Quotes"), r("data", "/*")]);
        let n = normalize(b"/api/quotes").expect("valid");
        assert!(matches!(t.find(&Method::GET, &n), RouteMatch::Ambiguous(ref n) if n == "upper"));
        let n = normalize(b"/api/Quotes").expect("valid");
        assert!(matches!(t.find(&Method::GET, &n), RouteMatch::Found(r) if r.name == "upper"));
    }
}
