//! Path normalisation: the one reading of a request path that tollgate routes,
//! meters and forwards.
//!
//! A request path is percent-decoded for matching, its dot segments resolved and
//! duplicate slashes collapsed *before* it is matched, and the origin receives
//! exactly the canonical path that was matched. Anything ambiguous (an encoded
//! slash or backslash, a control byte, bad percent-encoding, non-UTF-8, `..`
//! above the root) is refused with 400 rather than guessed at.
//!
//! Two more rules keep a cheaper route from being reached by a spelling that
//! a common origin server reads as a dearer one:
//! - the canonical path keeps reserved characters percent-encoded if the
//!   client encoded them (`%3B` stays `%3B`, never becomes a `;` the origin
//!   would treat as a parameter); unreserved ones (`%41`, `%7E`, `%2E`) are
//!   decoded, as RFC 3986 allows;
//! - every path also has a *loose* reading ([`loose_segment`]): what servers
//!   that drop `;params` (Java servlet containers), ignore letter case and trim
//!   trailing dots and spaces (IIS, ASP.NET) would match. The route table
//!   refuses a path whose loose reading picks another route.

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
    #[error("the path is percent-encoded twice (%25 followed by hex digits)")]
    DoubleEncoded,
}

/// A normalised request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// Decoded segments, no empty ones, no dot segments.
    pub segments: Vec<String>,
    /// The loose reading of `segments` ([`loose_segment`] of each), only when
    /// it differs from them.
    pub loose: Option<Vec<String>>,
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

    /// The loose segments, or the segments themselves when they are already loose.
    pub fn loose_segments(&self) -> &[String] {
        self.loose.as_deref().unwrap_or(&self.segments)
    }

    /// The loose reading as a path (`/a/b`), only when it differs from the canonical one.
    pub fn loose_path(&self) -> Option<String> {
        self.loose.as_ref().map(|segs| {
            let mut p = String::new();
            for s in segs {
                p.push('/');
                p.push_str(s);
            }
            if p.is_empty() {
                p.push('/');
            }
            p
        })
    }
}

/// A character as case-insensitive servers compare it: ASCII letters in lower
/// case, and a non-ASCII character whose case mapping is one ASCII letter
/// (`ſ` → `s`, the Kelvin sign → `k`) as that letter, since Java's
/// `equalsIgnoreCase` and Go's `EqualFold` fold them so.
fn fold(c: char) -> Option<char> {
    if c.is_ascii() {
        return c.is_ascii_uppercase().then(|| c.to_ascii_lowercase());
    }
    single_ascii(c.to_uppercase()).or_else(|| single_ascii(c.to_lowercase()))
}

/// The one ASCII letter a case mapping yields, in lower case, if it is one.
fn single_ascii(mut mapped: impl Iterator<Item = char>) -> Option<char> {
    match (mapped.next(), mapped.next()) {
        (Some(a), None) if a.is_ascii_alphabetic() => Some(a.to_ascii_lowercase()),
        _ => None,
    }
}

/// Whether a segment is an ASP.NET cookieless-session segment (`(S(…))`,
/// `(A(…))`, `(F(…))`), which System.Web strips before routing.
fn cookieless(seg: &str) -> bool {
    let b = seg.as_bytes();
    b.len() >= 5
        && b[0] == b'('
        && b[1].is_ascii_alphabetic()
        && b[2] == b'('
        && seg.ends_with("))")
}

/// A segment as lenient servers read it: cut at the first `;` (path
/// parameters), trailing dots and spaces trimmed, letters case-folded
/// ([`fold`]). A segment that reads as nothing (`;x`, ` `, a cookieless
/// segment) is dropped from the loose reading, as Tomcat collapses the `//`
/// it leaves.
pub fn loose_segment(seg: &str) -> std::borrow::Cow<'_, str> {
    if cookieless(seg) {
        return std::borrow::Cow::Owned(String::new());
    }
    let core = seg.split(';').next().unwrap_or("");
    let core = core.trim_end_matches(['.', ' ']);
    if core.len() == seg.len() && !seg.chars().any(|c| fold(c).is_some()) {
        std::borrow::Cow::Borrowed(seg)
    } else {
        std::borrow::Cow::Owned(core.chars().map(|c| fold(c).unwrap_or(c)).collect())
    }
}

/// A whole path (`/a/b`) read loosely, segment by segment.
pub fn loose_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        let seg = loose_segment(seg);
        if !seg.is_empty() {
            out.push('/');
            out.push_str(&seg);
        }
    }
    if out.is_empty() || path.ends_with('/') {
        out.push('/');
    }
    out
}

/// Bytes written back percent-encoded even when the client sent them raw:
/// anything that is not allowed raw in a path segment.
fn must_encode(b: u8) -> bool {
    b >= 0x80
        || b <= 0x20
        || b == 0x7f
        || matches!(
            b,
            b'"' | b'#'
                | b'%'
                | b'/'
                | b'<'
                | b'>'
                | b'?'
                | b'\\'
                | b'^'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
        )
}

/// RFC 3986 unreserved characters: decoding them changes nothing a server reads.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_encoded(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// One raw segment: its decoded text (for matching) and its canonical
/// spelling (for the origin).
fn decode_segment(raw: &[u8]) -> Result<(String, String), PathError> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut canonical = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let (b, was_encoded) = match raw[i] {
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
                        (d, true)
                    }
                    _ => return Err(PathError::BadEncoding),
                }
            }
            b => (b, false),
        };
        if b == b'\\' {
            return Err(PathError::AmbiguousSeparator);
        }
        if b < 0x20 || b == 0x7f {
            return Err(PathError::Control);
        }
        decoded.push(b);
        if must_encode(b) || (was_encoded && !unreserved(b)) {
            push_encoded(&mut canonical, b);
        } else {
            canonical.push(char::from(b));
        }
        i += 1;
    }
    // `%252e` decodes to `%2e`: a front that decodes once more would read `.`.
    if decoded
        .windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
    {
        return Err(PathError::DoubleEncoded);
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    Ok((decoded, canonical))
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
    // (decoded, canonical) of each kept segment.
    let mut segments: Vec<(String, String)> = Vec::new();
    let mut trailing_slash = false;
    let mut raw_segments = path.split(|&b| b == b'/').peekable();
    while let Some(raw) = raw_segments.next() {
        let (seg, canon) = decode_segment(raw)?;
        // `..;x`, `.. `, `...`: read as `..` by some servers (path parameters,
        // trailing dots and spaces trimmed); never guessed.
        if seg != "." && seg != ".." {
            let core = seg.split(';').next().unwrap_or("");
            let trimmed = seg.trim_end_matches(['.', ' ']);
            if core == "." || core == ".." || (trimmed.is_empty() && seg.contains('.')) {
                return Err(PathError::AmbiguousDots);
            }
        }
        let is_last = raw_segments.peek().is_none();
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            _ => segments.push((seg.clone(), canon)),
        }
        if is_last {
            trailing_slash = matches!(seg.as_str(), "" | "." | "..");
        }
    }
    let mut canonical = String::with_capacity(path.len());
    for (_, canon) in &segments {
        canonical.push('/');
        canonical.push_str(canon);
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
    let segments: Vec<String> = segments.into_iter().map(|(s, _)| s).collect();
    let loose = segments
        .iter()
        .any(|s| matches!(loose_segment(s), std::borrow::Cow::Owned(_)))
        .then(|| {
            segments
                .iter()
                .map(|s| loose_segment(s).into_owned())
                .filter(|s| !s.is_empty())
                .collect()
        });
    Ok(NormalPath {
        segments,
        loose,
        canonical,
        query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        assert_eq!(canon("/a/.."), Ok("/".into()));
        assert_eq!(canon("/a/b/.."), Ok("/a/".into()));
    }

    #[test]
    fn keeps_reserved_characters_encoded() {
        assert_eq!(canon("/api/a%3Bb"), Ok("/api/a%3Bb".into()));
        assert_eq!(canon("/api/a%3bb"), Ok("/api/a%3Bb".into()));
        assert_eq!(canon("/api/a%2Bb"), Ok("/api/a%2Bb".into()));
        assert_eq!(canon("/api/a%3Fb"), Ok("/api/a%3Fb".into()));
        assert_eq!(canon("/api/a%3Db%26c"), Ok("/api/a%3Db%26c".into()));
        assert_eq!(canon("/api/a;b"), Ok("/api/a;b".into()));
        assert_eq!(canon("/api/%41%2e"), Ok("/api/A.".into()));
        assert_eq!(canon("/api/caf%C3%A9"), Ok("/api/caf%C3%A9".into()));
        let n = normalize(b"/api/a%3Bb").expect("valid");
        assert_eq!(n.segments, vec!["api", "a;b"]);
    }

    #[test]
    fn loose_reading() {
        let loose = |p: &str| normalize(p.as_bytes()).expect("valid").loose;
        assert_eq!(loose("/api/v1/sec/filings"), None);
        let sec = Some(vec![
            "api".into(),
            "v1".into(),
            "sec".into(),
            "filings".into(),
        ]);
        for p in [
            "/api/v1/sec;x/filings",
            "/api/v1/sec%3Bx/filings",
            "/api/v1/SEC/filings",
            "/api/v1/sec./filings",
            "/api/v1/sec%2e/filings",
            "/api/v1/sec%20/filings",
            "/api/v1/Sec.%20;a=b/filings",
        ] {
            assert_eq!(loose(p), sec, "{p}");
        }
        assert_eq!(loose_path("/API/Keys/"), "/api/keys/");
        for p in [
            "/;x/api/v1/sec/filings",
            "/api/v1/;x/sec/filings",
            "/api/v1/%20/sec/filings",
            "/api/v1/(S(abc))/sec/filings",
            "/api/v1/%C5%BFec/filings",
        ] {
            assert_eq!(loose(p), sec, "{p}");
        }
        assert_eq!(
            loose("/api/v1/%E2%84%AAeys"),
            Some(vec!["api".into(), "v1".into(), "keys".into()])
        );
        assert_eq!(
            normalize(b"/A/b").expect("valid").loose_path().as_deref(),
            Some("/a/b")
        );
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
        assert_eq!(
            canon("/api/x/%252e%252e/sec"),
            Err(PathError::DoubleEncoded)
        );
        assert_eq!(canon("/api/100%25"), Ok("/api/100%25".into()));
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

    /// Path-ish bytes: separators, dots, escapes and letters in any order.
    fn raw_path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just(";".to_string()),
            Just(" ".to_string()),
            Just("%2e".to_string()),
            Just("%2E".to_string()),
            Just("%2f".to_string()),
            Just("%3B".to_string()),
            Just("%25".to_string()),
            Just("%20".to_string()),
            Just("%41".to_string()),
            Just("%C3%A9".to_string()),
            "[a-zA-Z0-9_~+=-]{1,4}",
        ];
        prop::collection::vec(piece, 0..12).prop_map(|p| format!("/{}", p.concat()))
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(p in raw_path()) {
            if let Ok(n) = normalize(p.as_bytes()) {
                let again = normalize(n.canonical.as_bytes()).expect("a canonical path normalises");
                prop_assert_eq!(&again.canonical, &n.canonical);
                prop_assert_eq!(&again.segments, &n.segments);
            }
        }

        #[test]
        fn never_yields_dot_dot_or_encoded_slash(p in raw_path()) {
            if let Ok(n) = normalize(p.as_bytes()) {
                let lower = n.canonical.to_ascii_lowercase();
                prop_assert!(!lower.contains("%2f"), "{}", n.canonical);
                prop_assert!(!n.canonical.split('/').any(|s| s == ".." || s == "."), "{}", n.canonical);
                prop_assert!(!n.segments.iter().any(|s| s == ".." || s == "." || s.contains('/')));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut target = vec![b'/'];
            target.extend(bytes);
            let _ = normalize(&target);
        }
    }
}
