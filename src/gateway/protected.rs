//! Header names tollgate owns or vouches for, recognised however a client
//! spells them. CGI-style servers (WSGI, PHP-FPM, some gunicorn setups) read
//! `X_Tollgate_Account` and `X-Tollgate-Account` as the same variable, so a
//! name is compared in lower case with `_` standing for `-`.

/// Prefix of the headers tollgate sets; a client never gets one through.
pub const OWN_PREFIX: &str = "x-tollgate-";

/// Credential headers: read by tollgate, never forwarded.
const CREDENTIALS: [&str; 3] = ["authorization", "proxy-authorization", "x-api-key"];

/// Headers that claim who the client is. From an untrusted peer they are
/// replaced by what tollgate vouches for; a trusted proxy's are appended to.
pub const FORWARDING: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "forwarded",
    "true-client-ip",
];

/// Headers some servers and frameworks route on instead of the request line
/// (IIS URL Rewrite, older Symfony and Zend; method overrides): they would let
/// a client reach another path or method than the one tollgate routed.
const OVERRIDES: [&str; 5] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// What a protected header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protected {
    /// `x-tollgate-*`: set only by tollgate.
    Own,
    /// A credential (`authorization`, `x-api-key`).
    Credential,
    /// A forwarding header (`x-forwarded-for`, `forwarded`, …).
    Forwarding,
    /// The configured client-IP header (e.g. `cf-connecting-ip`).
    ClientIp,
    /// A header that overrides the routed path or method.
    Override,
}

/// Whether `name` equals `target` (lower case, `-`) with any case and `_` for `-`.
pub fn loose_eq(name: &str, target: &str) -> bool {
    name.len() == target.len() && loose_prefix(name, target)
}

/// Whether `name` starts with `prefix` (lower case, `-`), read the same way.
pub fn loose_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// Classifies a header name; `client_ip` is the configured client-IP header
/// in lower case.
pub fn classify(name: &str, client_ip: Option<&str>) -> Option<Protected> {
    if loose_prefix(name, OWN_PREFIX) {
        Some(Protected::Own)
    } else if CREDENTIALS.iter().any(|c| loose_eq(name, c)) {
        Some(Protected::Credential)
    } else if FORWARDING.iter().any(|f| loose_eq(name, f)) {
        Some(Protected::Forwarding)
    } else if client_ip.is_some_and(|h| loose_eq(name, h)) {
        Some(Protected::ClientIp)
    } else if OVERRIDES.iter().any(|o| loose_eq(name, o)) {
        Some(Protected::Override)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscores_and_case_are_the_same_name() {
        let cf = Some("cf-connecting-ip");
        for name in [
            "x-tollgate-account",
            "X_Tollgate_Account",
            "x_TOLLGATE-plan",
        ] {
            assert_eq!(classify(name, cf), Some(Protected::Own), "{name}");
        }
        for name in ["authorization", "AUTHORIZATION", "x_api_key", "X-Api_Key"] {
            assert_eq!(classify(name, cf), Some(Protected::Credential), "{name}");
        }
        for name in [
            "x_forwarded_for",
            "Forwarded",
            "X_REAL_IP",
            "true_client_ip",
        ] {
            assert_eq!(classify(name, cf), Some(Protected::Forwarding), "{name}");
        }
        assert_eq!(classify("CF_Connecting_IP", cf), Some(Protected::ClientIp));
        assert_eq!(classify("cf-connecting-ip", None), None);
        for name in ["X-Original-URL", "x_rewrite_url", "X-HTTP-Method-Override"] {
            assert_eq!(classify(name, cf), Some(Protected::Override), "{name}");
        }
        assert_eq!(
            classify("X-Forwarded-Host", cf),
            Some(Protected::Forwarding)
        );
        for name in [
            "x-tollgate",
            "x-api-keys",
            "accept",
            "x-request-id",
            "authorizatio",
        ] {
            assert_eq!(classify(name, cf), None, "{name}");
        }
    }
}
