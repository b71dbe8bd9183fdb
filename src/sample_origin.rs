//! A small market-data API to stand behind tollgate in the quick start, the
//! tests and the benchmarks. Its data is synthetic and deterministic.
//!
//! `GET /api/health`, `/api/markets`, `/api/markets/{venue}/symbols`,
//! `/api/klines?symbol=&interval=&limit=`, `POST /api/indicators`,
//! `/openapi.json`, `/docs`, `/redoc`, `/agents.md`, plus `/api/echo` (any
//! method: the request as the origin saw it, body included), `/`, `/health`,
//! `/api/v1/entries` and `/api/1/market/data` for the other profiles.
//!
//! Every response carries `x-origin-server` (its name) and `x-origin-path`
//! (the request target exactly as received; bytes outside visible ASCII are
//! written as `%XX`), so tests can see what reached the origin. A request
//! with `Origin` also gets CORS headers of the origin's own
//! (`access-control-allow-origin: *`, `access-control-expose-headers:
//! x-origin-server`), as an API that handles CORS itself would send.

use async_trait::async_trait;
use http::{Method, Response};
use percent_encoding::percent_decode_str;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

/// The sample origin application.
pub struct SampleOrigin {
    /// Reported in `x-origin-server`, to see load balancing.
    pub name: String,
}

const VENUES: [&str; 3] = ["binance", "okx", "bybit"];
const SYMBOLS: [&str; 4] = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"];

fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (dec(k), dec(v))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn price(symbol: &str, i: u64) -> f64 {
    let base = match symbol {
        "BTCUSDT" => 65_000.0,
        "ETHUSDT" => 3_200.0,
        "SOLUSDT" => 150.0,
        _ => 1.0,
    };
    base * (1.0 + 0.01 * ((i as f64) * 0.7).sin())
}

fn closes(symbol: &str, n: u64) -> Vec<f64> {
    (0..n).map(|i| price(symbol, i)).collect()
}

fn ema(values: &[f64], period: usize) -> Vec<f64> {
    let k = 2.0 / (period as f64 + 1.0);
    let mut out = Vec::with_capacity(values.len());
    let mut prev: Option<f64> = None;
    for v in values {
        let next = match prev {
            None => *v,
            Some(p) => v * k + p * (1.0 - k),
        };
        out.push((next * 100.0).round() / 100.0);
        prev = Some(next);
    }
    out
}

fn limit_of(params: &[(String, String)], default: u64, max: u64) -> Result<u64, (u16, Value)> {
    match param(params, "limit") {
        None => Ok(default),
        Some(l) => match l.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err((
                422,
                json!({"detail": [{"loc": ["query", "limit"], "msg": format!("limit must be an integer from 1 to {max}")}]}),
            )),
        },
    }
}

impl SampleOrigin {
    fn route(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> (u16, Value) {
        let params = query_params(query);
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match (method.as_str(), segs.as_slice()) {
            ("GET", []) => (
                200,
                json!({"name": "sample market-data API", "docs": "/docs"}),
            ),
            ("GET", ["health"]) | ("GET", ["api", "health"]) => (200, json!({"status": "ok"})),
            (_, ["api", "echo"]) => echo(method, path, query, headers, body),
            ("GET", ["api", "markets"]) => {
                (200, json!({"venues": VENUES, "markets": ["spot", "perp"]}))
            }
            ("GET", ["api", "markets", venue, "symbols"]) => {
                if VENUES.contains(venue) {
                    (200, json!({"venue": venue, "symbols": SYMBOLS}))
                } else {
                    (404, json!({"detail": format!("venue {venue} not found")}))
                }
            }
            ("GET", ["api", "klines"]) => klines(&params),
            ("POST", ["api", "indicators"]) => indicators(body),
            ("GET", ["api", "v1", "entries"]) => entries(&params),
            ("GET", ["api", "v1", "sec", "filings"]) => {
                let limit = match limit_of(&params, 10, 100) {
                    Ok(l) => l,
                    Err(e) => return e,
                };
                let items: Vec<Value> = (0..limit)
                    .map(|i| json!({"id": i, "form": if i % 2 == 0 { "10-K" } else { "8-K" }, "company": format!("Company {i}")}))
                    .collect();
                (200, json!({"data": items}))
            }
            ("GET", ["api", "1", "market", "data"]) => {
                let asset = param(&params, "asset").unwrap_or("bitcoin");
                (
                    200,
                    json!({"data": {"name": asset, "price": price("BTCUSDT", 1)}}),
                )
            }
            ("GET", ["openapi.json"]) => (
                200,
                json!({"openapi": "3.1.0", "info": {"title": "sample market-data API", "version": "1.0"}, "paths": {"/api/markets": {}, "/api/klines": {}, "/api/indicators": {}}}),
            ),
            ("GET", ["docs"]) | ("GET", ["redoc"]) | ("GET", ["agents.md"]) => {
                (200, json!({"doc": path}))
            }
            _ => (404, json!({"detail": "Not Found"})),
        }
    }
}

/// `/api/echo`: the request as the origin saw it.
fn echo(
    method: &Method,
    path: &str,
    query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> (u16, Value) {
    let h: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                json!(String::from_utf8_lossy(v.as_bytes())),
            )
        })
        .collect();
    (
        200,
        json!({"method": method.as_str(), "path": path, "query": query, "headers": h, "body": String::from_utf8_lossy(body)}),
    )
}

/// `GET /api/klines`: synthetic candles.
fn klines(params: &[(String, String)]) -> (u16, Value) {
    let limit = match limit_of(params, 100, 1000) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let symbol = param(params, "symbol").unwrap_or("BTCUSDT");
    if !SYMBOLS.contains(&symbol) {
        return (
            404,
            json!({"detail": format!("symbol {symbol} not on venue")}),
        );
    }
    let interval = param(params, "interval").unwrap_or("5m");
    let rows: Vec<Value> = (0..limit)
        .map(|i| {
            let p = price(symbol, i);
            json!([
                1_700_000_000_000u64 + i * 300_000,
                p,
                p * 1.002,
                p * 0.998,
                price(symbol, i + 1),
                10.0 + i as f64
            ])
        })
        .collect();
    (
        200,
        json!({"symbol": symbol, "interval": interval, "klines": rows}),
    )
}

/// `POST /api/indicators`: an EMA of synthetic closes.
fn indicators(body: &[u8]) -> (u16, Value) {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return (
                422,
                json!({"detail": [{"loc": ["body"], "msg": e.to_string()}]}),
            )
        }
    };
    let Some(symbol) = req.get("symbol").and_then(Value::as_str) else {
        return (
            422,
            json!({"detail": [{"loc": ["body", "symbol"], "msg": "field required"}]}),
        );
    };
    let limit = req
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 1000);
    let period = req
        .get("calc")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("params"))
        .and_then(|p| p.get("period"))
        .and_then(Value::as_u64)
        .unwrap_or(20) as usize;
    (
        200,
        json!({"symbol": symbol, "ema": ema(&closes(symbol, limit), period.max(1))}),
    )
}

/// `GET /api/v1/entries`: a paginated list.
fn entries(params: &[(String, String)]) -> (u16, Value) {
    let limit = match limit_of(params, 10, 100) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let start: u64 = param(params, "cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let items: Vec<Value> = (start..start + limit)
        .map(|i| json!({"id": i, "symbol": SYMBOLS[(i % 4) as usize], "price": price(SYMBOLS[(i % 4) as usize], i)}))
        .collect();
    (
        200,
        json!({"data": items, "nextCursor": (start + limit).to_string()}),
    )
}

/// The raw request target as a header value: visible ASCII as is, any other
/// byte as `%XX`.
fn visible_target(raw: &[u8]) -> String {
    raw.iter()
        .map(|&b| {
            if (0x21..=0x7e).contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[async_trait]
impl ServeHttp for SampleOrigin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = session.read_request_body().await {
            if body.len() + chunk.len() > 1 << 20 {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let req = session.req_header();
        let target = visible_target(req.raw_path());
        let (status, value) = self.route(
            &req.method,
            req.uri.path(),
            req.uri.query().unwrap_or(""),
            &req.headers,
            &body,
        );
        let bytes = value.to_string().into_bytes();
        let mut builder = Response::builder();
        if req.headers.contains_key(http::header::ORIGIN) {
            builder = builder
                .header("access-control-allow-origin", "*")
                .header("access-control-expose-headers", "x-origin-server");
        }
        builder
            .status(status)
            .header("content-type", "application/json")
            .header("content-length", bytes.len())
            .header("x-origin-server", self.name.as_str())
            .header("x-origin-path", target)
            .body(bytes)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klines_honour_limit() {
        let o = SampleOrigin { name: "t".into() };
        let (s, v) = o.route(
            &Method::GET,
            "/api/klines",
            "limit=5&symbol=ETHUSDT",
            &http::HeaderMap::new(),
            b"",
        );
        assert_eq!(s, 200);
        assert_eq!(v["klines"].as_array().map(Vec::len), Some(5));
        let (s, _) = o.route(
            &Method::GET,
            "/api/klines",
            "limit=0",
            &http::HeaderMap::new(),
            b"",
        );
        assert_eq!(s, 422);
        let (s, v) = o.route(
            &Method::POST,
            "/api/indicators",
            "",
            &http::HeaderMap::new(),
            br#"{"symbol":"BTCUSDT","limit":10}"#,
        );
        assert_eq!(s, 200);
        assert_eq!(v["ema"].as_array().map(Vec::len), Some(10));
    }

    #[test]
    fn echo_answers_any_method_and_targets_are_reported_verbatim() {
        let o = SampleOrigin { name: "t".into() };
        for m in [Method::GET, Method::POST, Method::DELETE, Method::PATCH] {
            let (s, v) = o.route(&m, "/api/echo", "a=1", &http::HeaderMap::new(), b"hi");
            assert_eq!(s, 200);
            assert_eq!(v["method"], m.as_str());
            assert_eq!(v["query"], "a=1");
            assert_eq!(v["body"], "hi");
        }
        assert_eq!(
            visible_target(b"/api/echo?q=%2F&x=1"),
            "/api/echo?q=%2F&x=1"
        );
        assert_eq!(visible_target(b"/a b\xff"), "/a%20b%FF");
    }
}
