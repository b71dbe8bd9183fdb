//! Content codings: which one a client prefers (`Accept-Encoding`, with its
//! weights) and the streaming encoders, each finished properly at the end of
//! the body.

use flate2::write::GzEncoder;
use parking_lot::Mutex;
use std::io::{self, Write};

/// A coding tollgate can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
    Zstd,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        match token {
            "gzip" | "x-gzip" => Some(Self::Gzip),
            "br" => Some(Self::Brotli),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The client's preferred coding among those tollgate produces: the
    /// highest weight, the client's order between equals; `*` stands for gzip
    /// unless gzip is named. `None`: nothing acceptable but identity.
    pub fn preferred(accept_encoding: &str) -> Option<Self> {
        let mut best: Option<(Self, f32)> = None;
        let mut named_gzip = false;
        let mut star = None;
        for item in accept_encoding.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if token == "*" {
                star = Some(q);
                continue;
            }
            let Some(coding) = Self::from_token(&token) else {
                continue;
            };
            named_gzip |= coding == Self::Gzip;
            if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((coding, q));
            }
        }
        if let (Some(q), false) = (star, named_gzip) {
            if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((Self::Gzip, q));
            }
        }
        best.map(|(c, _)| c)
    }
}

/// A streaming encoder writing into a buffer that is taken after each piece.
pub enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    /// zstd's encoder is not `Sync`; Pingora's modules must be.
    Zstd(Mutex<zstd::stream::write::Encoder<'static, Vec<u8>>>),
}

impl Encoder {
    /// An encoder for `coding` at `level` (1 to 9: gzip's level, brotli's
    /// quality, zstd's level). With the body's size, brotli and zstd size
    /// their window and tables to it: for a small body, setting up those
    /// tables costs more than compressing it.
    pub fn new(coding: Coding, level: u32, size: Option<usize>) -> io::Result<Self> {
        // log2 of a window that holds the whole body (brotli and zstd accept 10..).
        let fit = |max: u32| {
            size.map_or(max, |n| {
                (usize::BITS - n.max(1).saturating_sub(1).leading_zeros()).clamp(10, max)
            })
        };
        Ok(match coding {
            Coding::Gzip => Self::Gzip(GzEncoder::new(Vec::new(), flate2::Compression::new(level))),
            Coding::Brotli => Self::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                level,
                fit(20),
            ))),
            Coding::Zstd => {
                use zstd::stream::raw::CParameter;
                let mut e = zstd::stream::write::Encoder::new(Vec::new(), level as i32)?;
                if size.is_some() {
                    let window = fit(22);
                    e.set_parameter(CParameter::WindowLog(window))?;
                    e.set_parameter(CParameter::HashLog(window.min(17)))?;
                    e.set_parameter(CParameter::ChainLog(window.min(16)))?;
                }
                Self::Zstd(Mutex::new(e))
            }
        })
    }

    /// Encodes a piece of the body; returns what the encoder has emitted so far.
    pub fn push(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        Ok(match self {
            Self::Gzip(e) => {
                e.write_all(data)?;
                std::mem::take(e.get_mut())
            }
            Self::Brotli(e) => {
                e.write_all(data)?;
                std::mem::take(e.get_mut())
            }
            Self::Zstd(e) => {
                let mut e = e.lock();
                e.write_all(data)?;
                std::mem::take(e.get_mut())
            }
        })
    }

    /// Ends the stream; returns the rest of the encoded bytes.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip(e) => e.finish(),
            Self::Brotli(e) => Ok(e.into_inner()),
            Self::Zstd(e) => e.into_inner().finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_preferred_coding_follows_the_weights() {
        let p = Coding::preferred;
        assert_eq!(p("gzip"), Some(Coding::Gzip));
        assert_eq!(p("gzip, deflate, br, zstd"), Some(Coding::Gzip));
        assert_eq!(p("gzip;q=0.5, br"), Some(Coding::Brotli));
        assert_eq!(p("br;q=0, zstd"), Some(Coding::Zstd));
        assert_eq!(p("deflate, identity"), None);
        assert_eq!(p("*"), Some(Coding::Gzip));
        assert_eq!(p("gzip;q=0, *"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn every_encoder_ends_its_stream() {
        let body = br#"{"klines":[[1700000000000,60000.5,60120.5,59880.5]]}"#.repeat(40);
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            for size in [None, Some(body.len())] {
                let mut e = Encoder::new(coding, 3, size).expect("encoder");
                let mut out = e.push(&body[..100]).expect("push");
                out.extend(e.push(&body[100..]).expect("push"));
                out.extend(e.finish().expect("finish"));
                let mut back = Vec::new();
                match coding {
                    Coding::Gzip => {
                        flate2::read::GzDecoder::new(&out[..])
                            .read_to_end(&mut back)
                            .expect("gunzip");
                    }
                    Coding::Brotli => {
                        brotli::Decompressor::new(&out[..], 4096)
                            .read_to_end(&mut back)
                            .expect("unbrotli");
                    }
                    Coding::Zstd => back = zstd::decode_all(&out[..]).expect("unzstd"),
                }
                assert_eq!(back, body, "{coding:?} {size:?}");
                assert!(out.len() < body.len() / 4, "{coding:?}: {}", out.len());
            }
        }
    }
}
