//! Response compression: gzip, brotli or zstd for clients that accept it,
//! when the origin did not encode the body, above a minimum size and for the
//! configured media types.
//!
//! [`Compression`] is a Pingora module, so it sees every response, the
//! origin's and tollgate's own, after the proxy's response filter. A response
//! it may compress gets `Vary: Accept-Encoding` whether or not this client
//! accepts a coding; one it compresses loses `Content-Length` and
//! `Accept-Ranges`, and its strong `ETag` is weakened. It leaves alone
//! partial content, `Cache-Control: no-transform` and bodies with a
//! `Content-Encoding` already.
//!
//! Pingora has a compression module too, but its brotli stream is flushed and
//! never finished, which decoders refuse; the encoders here finish theirs.

mod encoder;

pub use encoder::{Coding, Encoder};

use crate::config::CompressionSettings;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, TRANSFER_ENCODING, VARY,
};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::{Error, ErrorType};
use std::any::Any;
use std::sync::Arc;

/// Where a response is, for this module.
enum State {
    /// The response header has not been seen: the client's preferred coding.
    Waiting(Option<Coding>),
    /// Compressing the body.
    Encoding(Encoder),
    /// Passing the body on as it is (or done).
    Passing,
}

/// The per-request compression module.
pub struct Compression {
    settings: Arc<CompressionSettings>,
    state: State,
}

impl Compression {
    /// The module's builder, for `HttpModules::add_module`.
    pub fn module(settings: CompressionSettings) -> Box<dyn HttpModuleBuilder + Send + Sync> {
        Box::new(CompressionBuilder {
            settings: Arc::new(settings),
        })
    }
}

struct CompressionBuilder {
    settings: Arc<CompressionSettings>,
}

impl HttpModuleBuilder for CompressionBuilder {
    fn init(&self) -> Module {
        Box::new(Compression {
            settings: self.settings.clone(),
            state: State::Waiting(None),
        })
    }

    fn order(&self) -> i16 {
        // After the other response filters.
        i16::MIN / 2
    }
}

/// Whether a media type (`type/subtype`, lower case) is one of `types`.
fn type_listed(types: &[String], media: &str) -> bool {
    types.iter().any(|t| match t.strip_suffix("/*") {
        Some(major) => media
            .split_once('/')
            .is_some_and(|(m, sub)| m == major && !sub.is_empty()),
        None => t == media,
    })
}

fn header<'a>(resp: &'a ResponseHeader, name: &http::HeaderName) -> Option<&'a str> {
    resp.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Sets `Vary: Accept-Encoding`, keeping what the response varies on already.
fn add_vary(resp: &mut ResponseHeader) -> pingora::Result<()> {
    let existing = header(resp, &VARY).unwrap_or("").to_string();
    let named = existing.split(',').any(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "*" | "accept-encoding"
        )
    });
    if !named {
        let value = if existing.trim().is_empty() {
            "Accept-Encoding".to_string()
        } else {
            format!("{existing}, Accept-Encoding")
        };
        resp.insert_header(VARY, value)?;
    }
    Ok(())
}

/// The header of a response whose body is now encoded with `coding`.
fn mark_encoded(resp: &mut ResponseHeader, coding: Coding) -> pingora::Result<()> {
    resp.insert_header(CONTENT_ENCODING, coding.token())?;
    resp.remove_header(&CONTENT_LENGTH);
    resp.remove_header(&ACCEPT_RANGES);
    // HTTP/1.1 frames the body in chunks; Pingora drops this for HTTP/2.
    resp.insert_header(TRANSFER_ENCODING, "chunked")?;
    // Another representation: a strong validator becomes weak.
    if let Some(etag) = header(resp, &ETAG).map(str::to_string) {
        if etag.starts_with('"') {
            resp.insert_header(ETAG, format!("W/{etag}"))?;
        } else if !etag.starts_with("W/") {
            resp.remove_header(&ETAG);
        }
    }
    Ok(())
}

fn encoding_failed(e: std::io::Error) -> Box<Error> {
    Error::because(ErrorType::InternalError, "while compressing a response", e)
}

impl Compression {
    /// Whether this response may be compressed, whatever the client accepts.
    fn eligible(&self, resp: &ResponseHeader) -> bool {
        if resp.status.as_u16() == 206 || resp.headers.contains_key(CONTENT_RANGE) {
            return false;
        }
        if header(resp, &CONTENT_ENCODING)
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            return false;
        }
        if header(resp, &CACHE_CONTROL)
            .is_some_and(|c| c.to_ascii_lowercase().contains("no-transform"))
        {
            return false;
        }
        let media = header(resp, &CONTENT_TYPE)
            .map(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if !type_listed(&self.settings.types, &media) {
            return false;
        }
        // Without a length (a streamed body) the size is unknown: compress.
        header(resp, &CONTENT_LENGTH)
            .and_then(|l| l.trim().parse::<usize>().ok())
            .is_none_or(|len| len >= self.settings.min_size)
    }

    /// Decides for a final response header with a body, and adjusts it.
    fn start(&mut self, resp: &mut ResponseHeader, coding: Option<Coding>) -> pingora::Result<()> {
        if !self.eligible(resp) {
            return Ok(());
        }
        add_vary(resp)?;
        let Some(coding) = coding else {
            return Ok(());
        };
        let size = header(resp, &CONTENT_LENGTH).and_then(|l| l.trim().parse().ok());
        let encoder = Encoder::new(coding, self.settings.level, size).map_err(encoding_failed)?;
        mark_encoded(resp, coding)?;
        self.state = State::Encoding(encoder);
        Ok(())
    }

    /// Ends the encoded stream, once; the bytes still to send.
    fn finish(&mut self) -> pingora::Result<Option<Bytes>> {
        match std::mem::replace(&mut self.state, State::Passing) {
            State::Encoding(encoder) => encoder
                .finish()
                .map(|rest| Some(Bytes::from(rest)))
                .map_err(encoding_failed),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl HttpModule for Compression {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> pingora::Result<()> {
        let coding = req
            .headers
            .get(ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .and_then(Coding::preferred);
        self.state = State::Waiting(coding);
        Ok(())
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> pingora::Result<()> {
        let State::Waiting(coding) = self.state else {
            return Ok(());
        };
        if resp.status.is_informational() {
            // Wait for the final response, unless the protocol switches.
            if resp.status.as_u16() == 101 {
                self.state = State::Passing;
            }
            return Ok(());
        }
        self.state = State::Passing;
        if end_of_stream {
            return Ok(());
        }
        self.start(resp, coding)
    }

    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> pingora::Result<()> {
        let State::Encoding(encoder) = &mut self.state else {
            return Ok(());
        };
        let mut out = match body.as_deref() {
            Some(data) if !data.is_empty() => encoder.push(data).map_err(encoding_failed)?,
            _ => Vec::new(),
        };
        if end_of_stream {
            if let Some(rest) = self.finish()? {
                out.extend_from_slice(&rest);
            }
        }
        *body = Some(Bytes::from(out));
        Ok(())
    }

    fn response_done_filter(&mut self) -> pingora::Result<Option<Bytes>> {
        self.finish()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_match_exactly_or_by_major_type() {
        let types = ["application/json".to_string(), "text/*".to_string()];
        assert!(type_listed(&types, "application/json"));
        assert!(type_listed(&types, "text/csv"));
        assert!(!type_listed(&types, "application/octet-stream"));
        assert!(!type_listed(&types, "text/"));
        assert!(!type_listed(&types, ""));
    }

    fn module(min_size: usize) -> Compression {
        Compression {
            settings: Arc::new(CompressionSettings {
                level: 3,
                min_size,
                types: vec!["application/json".into()],
            }),
            state: State::Waiting(Some(Coding::Gzip)),
        }
    }

    fn response(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).expect("header");
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).expect("insert");
        }
        r
    }

    #[test]
    fn eligibility_needs_type_size_no_encoding_and_no_transform_clearance() {
        let m = module(1024);
        let json = ("content-type", "application/json; charset=utf-8");
        assert!(m.eligible(&response(&[json, ("content-length", "2048")])));
        assert!(m.eligible(&response(&[json])));
        assert!(!m.eligible(&response(&[json, ("content-length", "100")])));
        assert!(!m.eligible(&response(&[("content-type", "image/png")])));
        assert!(!m.eligible(&response(&[json, ("content-encoding", "gzip")])));
        assert!(!m.eligible(&response(&[
            json,
            ("cache-control", "public, no-transform")
        ])));
        assert!(!m.eligible(&response(&[json, ("content-range", "bytes 0-9/100")])));
    }

    #[test]
    fn a_compressed_response_is_marked_and_its_etag_weakened() {
        let mut m = module(10);
        let mut r = response(&[
            ("content-type", "application/json"),
            ("content-length", "2048"),
            ("etag", "\"abc\""),
            ("vary", "Origin"),
            ("accept-ranges", "bytes"),
        ]);
        m.start(&mut r, Some(Coding::Zstd)).expect("start");
        let h = |n: &str| {
            r.headers
                .get(n)
                .map(|v| v.to_str().expect("ascii").to_string())
        };
        assert_eq!(h("content-encoding").as_deref(), Some("zstd"));
        assert_eq!(h("content-length"), None);
        assert_eq!(h("accept-ranges"), None);
        assert_eq!(h("etag").as_deref(), Some("W/\"abc\""));
        assert_eq!(h("vary").as_deref(), Some("Origin, Accept-Encoding"));
        assert!(matches!(m.state, State::Encoding(_)));
    }
}
