//! CORS policies: which browser origins may read an endpoint's responses, and
//! the `Access-Control-*` values tollgate answers them with. Pure data and
//! matching; the gateway applies it to requests and responses
//! (`gateway::cors`), the config compiles it (`config::validate::cors`).

use std::sync::Arc;

/// `Access-Control-Allow-Origin`.
pub const ALLOW_ORIGIN: &str = "Access-Control-Allow-Origin";
/// `Access-Control-Allow-Credentials`.
pub const ALLOW_CREDENTIALS: &str = "Access-Control-Allow-Credentials";
/// `Access-Control-Expose-Headers`.
pub const EXPOSE_HEADERS: &str = "Access-Control-Expose-Headers";
/// `Access-Control-Allow-Methods`.
pub const ALLOW_METHODS: &str = "Access-Control-Allow-Methods";
/// `Access-Control-Allow-Headers`.
pub const ALLOW_HEADERS: &str = "Access-Control-Allow-Headers";
/// `Access-Control-Max-Age`.
pub const MAX_AGE: &str = "Access-Control-Max-Age";

/// Methods a preflight is told are allowed, unless configured.
pub const DEFAULT_METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// Request headers a preflight is told are allowed, unless configured
/// (`Authorization` is never covered by a `*`, so it is listed by name).
pub const DEFAULT_ALLOW_HEADERS: [&str; 3] = ["Authorization", "Content-Type", "X-Api-Key"];

/// Response headers a script may read, unless configured: the rate-limit,
/// credit and token state tollgate adds, and a request id when there is one.
pub const DEFAULT_EXPOSE_HEADERS: [&str; 9] = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "X-Credits-Remaining",
    "X-Token-Requests-Remaining",
    "X-Request-Id",
];

/// How long a browser may cache a preflight answer, unless configured (10 minutes).
pub const DEFAULT_MAX_AGE_SECS: u64 = 600;

/// How an endpoint takes part in CORS.
#[derive(Debug, Clone, Default)]
pub enum Cors {
    /// No part: no preflight is answered (an `OPTIONS` is routed like any
    /// request) and no CORS header is added or removed.
    #[default]
    Off,
    /// Left to the origin server: preflights are forwarded to it without a
    /// credential and unmetered, and its CORS headers pass untouched.
    Origin,
    /// tollgate answers preflights and writes the CORS headers of every
    /// response, replacing any the origin sent.
    Policy(Arc<CorsPolicy>),
}

impl Cors {
    /// Whether tollgate takes any part (answers or forwards preflights).
    pub fn is_on(&self) -> bool {
        !matches!(self, Cors::Off)
    }
}

/// One entry of an allowed-origins list, in the form browsers send `Origin`
/// (lower case, no default port, no path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// Exactly this origin, e.g. `https://app.example.com`.
    Exact(String),
    /// Any origin one or more labels under a domain, with this scheme and
    /// port: `https://*.example.com` is `prefix = "https://"`, `suffix =
    /// ".example.com"`, `port = ""`.
    Subdomains {
        /// `scheme://`.
        prefix: String,
        /// `.` and the domain.
        suffix: String,
        /// `:port`, or empty for the scheme's default port.
        port: String,
    },
}

/// Which origins a policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Every origin (`*`).
    Any,
    /// The origins these patterns match.
    List(Vec<OriginPattern>),
}

/// A validated CORS policy, as the config states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsRules {
    /// The origins whose pages may read responses.
    pub origins: AllowedOrigins,
    /// Upper-case method names.
    pub methods: Vec<String>,
    /// Request header names a preflight may announce.
    pub allow_headers: Vec<String>,
    /// Response header names a script may read.
    pub expose_headers: Vec<String>,
    pub max_age_secs: u64,
    /// Whether responses may be read by requests made with credentials
    /// (cookies, HTTP authentication); never with [`AllowedOrigins::Any`].
    pub credentials: bool,
}

impl Default for CorsRules {
    fn default() -> Self {
        let own = |list: &[&str]| list.iter().map(|s| (*s).to_string()).collect();
        Self {
            origins: AllowedOrigins::List(Vec::new()),
            methods: own(&DEFAULT_METHODS),
            allow_headers: own(&DEFAULT_ALLOW_HEADERS),
            expose_headers: own(&DEFAULT_EXPOSE_HEADERS),
            max_age_secs: DEFAULT_MAX_AGE_SECS,
            credentials: false,
        }
    }
}

/// A CORS policy with its header values written once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// The policy as configured.
    pub rules: CorsRules,
    methods: String,
    allow_headers: String,
    expose_headers: String,
    max_age: String,
}

impl CorsPolicy {
    /// Builds the header values of `rules`.
    pub fn new(rules: CorsRules) -> Self {
        Self {
            methods: rules.methods.join(", "),
            allow_headers: rules.allow_headers.join(", "),
            expose_headers: rules.expose_headers.join(", "),
            max_age: rules.max_age_secs.to_string(),
            rules,
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, or
    /// `None` when that origin is not allowed: `*` for every origin without
    /// credentials, otherwise the origin itself.
    pub fn allow_origin(&self, origin: &str) -> Option<String> {
        match &self.rules.origins {
            AllowedOrigins::Any if !self.rules.credentials => Some("*".to_string()),
            AllowedOrigins::Any => None,
            AllowedOrigins::List(patterns) => {
                let origin = origin.to_ascii_lowercase();
                let (scheme, host, port) = split_origin(&origin)?;
                patterns
                    .iter()
                    .any(|p| p.matches(&origin, scheme, host, port))
                    .then_some(origin)
            }
        }
    }

    /// The headers of every response to an allowed origin, whose
    /// `Access-Control-Allow-Origin` is `allow`.
    pub fn response_headers<'a>(&'a self, allow: &'a str) -> Vec<(&'static str, &'a str)> {
        let mut out = vec![(ALLOW_ORIGIN, allow)];
        if !self.expose_headers.is_empty() {
            out.push((EXPOSE_HEADERS, self.expose_headers.as_str()));
        }
        if self.rules.credentials {
            out.push((ALLOW_CREDENTIALS, "true"));
        }
        out
    }

    /// The headers a preflight answer adds to [`Self::response_headers`].
    pub fn preflight_headers(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![(ALLOW_METHODS, self.methods.as_str())];
        if !self.allow_headers.is_empty() {
            out.push((ALLOW_HEADERS, self.allow_headers.as_str()));
        }
        out.push((MAX_AGE, self.max_age.as_str()));
        out
    }
}

impl OriginPattern {
    /// Reads one allowed-origin entry: `scheme://host[:port]` (http or https)
    /// or `scheme://*.domain[:port]`; case is folded and a default port dropped.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        if lower == "null" {
            return Err(
                "\"null\" is not allowed: sandboxed frames and file:// pages all send it".into(),
            );
        }
        let Some((scheme, rest)) = lower.split_once("://") else {
            return Err(format!(
                "{text:?} is not an origin like https://app.example.com"
            ));
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!("{text:?}: the scheme must be http or https"));
        }
        if rest.contains(['/', '?', '#']) {
            return Err(format!(
                "{text:?} has a path: an origin is only scheme://host[:port], without a trailing '/'"
            ));
        }
        let wildcard = rest.strip_prefix("*.");
        let candidate = format!("{scheme}://{}", wildcard.unwrap_or(rest));
        let Some((_, host, port)) = split_origin(&candidate) else {
            return Err(format!(
                "{text:?} is not an origin like https://app.example.com (a wildcard may only be the first label: https://*.example.com)"
            ));
        };
        let default_port = if scheme == "https" { "443" } else { "80" };
        let port = match port {
            Some(p) if p != default_port => format!(":{p}"),
            _ => String::new(),
        };
        match wildcard {
            None => Ok(OriginPattern::Exact(format!("{scheme}://{host}{port}"))),
            Some(_) if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() => Err(
                format!("{text:?}: a wildcard needs a domain name, not an address"),
            ),
            Some(_) if !host.contains('.') => Err(format!(
                "{text:?}: a wildcard needs a domain of at least two labels (https://*.example.com), not a top-level domain"
            )),
            Some(_) => Ok(OriginPattern::Subdomains {
                prefix: format!("{scheme}://"),
                suffix: format!(".{host}"),
                port,
            }),
        }
    }

    /// Whether a request origin (lower case, split by [`split_origin`]) matches.
    fn matches(&self, origin: &str, scheme: &str, host: &str, port: Option<&str>) -> bool {
        match self {
            OriginPattern::Exact(exact) => exact == origin,
            OriginPattern::Subdomains {
                prefix,
                suffix,
                port: want_port,
            } => {
                let port_matches = match port {
                    None => want_port.is_empty(),
                    Some(p) => want_port.strip_prefix(':') == Some(p),
                };
                // The host is valid labels, so whatever precedes the suffix
                // is one or more whole labels: `evilexample.com` does not end
                // with `.example.com`, and `example.com` itself is too short.
                prefix.strip_suffix("://") == Some(scheme)
                    && port_matches
                    && host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
            }
        }
    }
}

/// Splits a serialised origin `scheme://host[:port]` into its parts, or
/// `None` when it is not one: the host is DNS labels (letters, digits, `-`,
/// none empty) or a bracketed IPv6 address; the port is 1-65535.
pub fn split_origin(origin: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = origin.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']')?;
        let (host, after) = rest.split_at(end + 1);
        let inner = &host[1..host.len() - 1];
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !matches!(p.parse::<u32>(), Ok(1..=65535)) {
            return None;
        }
    }
    let labels_ok = host.starts_with('[')
        || (!host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    labels_ok.then_some((scheme, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
        let origins = if origins == ["*"] {
            AllowedOrigins::Any
        } else {
            AllowedOrigins::List(
                origins
                    .iter()
                    .map(|o| OriginPattern::parse(o).expect("valid"))
                    .collect(),
            )
        };
        CorsPolicy::new(CorsRules {
            origins,
            credentials,
            ..CorsRules::default()
        })
    }

    #[test]
    fn exact_origins_match_scheme_host_and_port() {
        let p = policy(&["https://App.Example.com", "http://localhost:3000"], false);
        assert_eq!(
            p.allow_origin("https://app.example.com").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            p.allow_origin("HTTPS://APP.example.COM").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            p.allow_origin("http://localhost:3000").as_deref(),
            Some("http://localhost:3000")
        );
        for no in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.evil.com",
            "https://evil.com/https://app.example.com",
            "http://localhost:30000",
            "http://localhost",
            "null",
            "",
        ] {
            assert_eq!(p.allow_origin(no), None, "{no}");
        }
    }

    #[test]
    fn wildcards_cover_whole_subdomain_labels_only() {
        let p = policy(&["https://*.example.com"], true);
        for yes in [
            "https://a.example.com",
            "https://a.b.example.com",
            "https://x-1.example.com",
        ] {
            assert_eq!(p.allow_origin(yes).as_deref(), Some(yes), "{yes}");
        }
        for no in [
            "https://example.com",
            "https://evilexample.com",
            "https://.example.com",
            "https://a..example.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://a.example.com.evil.com",
            "https://a.example.co",
            "https://a_b.example.com",
            "https://user@a.example.com",
        ] {
            assert_eq!(p.allow_origin(no), None, "{no}");
        }
        let p = policy(&["http://*.example.com:8080"], false);
        assert!(p.allow_origin("http://a.example.com:8080").is_some());
        assert!(p.allow_origin("http://a.example.com").is_none());
    }

    #[test]
    fn any_origin_is_a_star_without_credentials() {
        let p = policy(&["*"], false);
        assert_eq!(
            p.allow_origin("https://anything.test").as_deref(),
            Some("*")
        );
        let headers = p.response_headers("*");
        assert!(headers.contains(&(ALLOW_ORIGIN, "*")));
        assert!(!headers.iter().any(|(n, _)| *n == ALLOW_CREDENTIALS));
        let expose = headers
            .iter()
            .find(|(n, _)| *n == EXPOSE_HEADERS)
            .map(|(_, v)| *v)
            .expect("expose");
        assert!(expose.contains("Retry-After") && expose.contains("X-Token-Requests-Remaining"));
    }

    #[test]
    fn origin_entries_are_checked() {
        assert_eq!(
            OriginPattern::parse("https://app.example.com:443"),
            Ok(OriginPattern::Exact("https://app.example.com".into()))
        );
        assert_eq!(
            OriginPattern::parse("http://[::1]:8080"),
            Ok(OriginPattern::Exact("http://[::1]:8080".into()))
        );
        for bad in [
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/",
            "https://app.*.example.com",
            "https://*example.com",
            "https://*.com",
            "https://*.127.0.0.1",
            "https://a.example.com:0",
            "https://a.example.com:99999",
            "null",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
