//! The request id: the client's `X-Request-Id` when it is well-formed (1 to
//! [`MAX_LEN`] bytes of visible ASCII), otherwise a new UUID v4. Decided once,
//! first thing in the pipeline; sent to the origin, returned on every response
//! and written to the access log.

use http::HeaderMap;

/// The header, as written on requests to the origin and on responses.
pub const HEADER: &str = "X-Request-Id";

/// Longest client-sent id kept, in bytes.
pub const MAX_LEN: usize = 128;

/// Whether a client-sent id may be kept as it is: 1 to [`MAX_LEN`] bytes, each
/// visible ASCII (0x21 to 0x7E: no space, no control character, nothing
/// outside ASCII), so that it is safe in a header, a log line and a URL.
pub fn well_formed(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len()) && value.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A new id: a UUID v4 from the thread's RNG (no system call per request).
pub fn generate() -> String {
    let bytes: [u8; 16] = rand::random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The request's id: the client's when there is exactly one `X-Request-Id`
/// and it is well-formed, a new one otherwise.
pub fn of(headers: &HeaderMap) -> String {
    let mut values = headers.get_all(HEADER).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if well_formed(v.as_bytes()) => {
            // Visible ASCII only, so always valid UTF-8.
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        }
        _ => generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                "x-request-id",
                HeaderValue::from_bytes(v).expect("header value"),
            );
        }
        h
    }

    fn is_uuid_v4(id: &str) -> bool {
        uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4) && id.len() == 36
    }

    #[test]
    fn a_well_formed_id_is_kept() {
        for id in [
            "abc-123",
            "7f3c9a2e-1b4d-4e8f-9a6b-2c5d7e9f1a3b",
            "a",
            "!~{}[]()<>\"'\\/:;=?@#$%^&*+,.|`",
        ] {
            assert_eq!(of(&with(&[id.as_bytes()])), id);
        }
        let longest = "x".repeat(MAX_LEN);
        assert_eq!(of(&with(&[longest.as_bytes()])), longest);
    }

    #[test]
    fn a_malformed_id_is_replaced() {
        let too_long = "x".repeat(MAX_LEN + 1);
        let cases: [&[u8]; 8] = [
            too_long.as_bytes(),
            b"",
            b"has space",
            b"tab\there",
            b"del\x7f",
            b"\x01ctl",
            "caf\u{e9}".as_bytes(),
            b"\xff\xfe",
        ];
        for bad in cases {
            assert!(!well_formed(bad), "{bad:?} was accepted");
            // What a header can hold at all (no control characters but tab).
            if let Ok(v) = HeaderValue::from_bytes(bad) {
                let mut h = HeaderMap::new();
                h.insert("x-request-id", v);
                let id = of(&h);
                assert!(is_uuid_v4(&id), "{bad:?} gave {id:?}");
            }
        }
    }

    #[test]
    fn absent_or_repeated_ids_are_replaced() {
        assert!(is_uuid_v4(&of(&HeaderMap::new())));
        assert!(is_uuid_v4(&of(&with(&[b"one", b"two"]))));
    }

    #[test]
    fn generated_ids_are_uuid_v4_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(is_uuid_v4(&a) && is_uuid_v4(&b));
        assert_ne!(a, b);
        assert!(well_formed(a.as_bytes()));
    }
}
