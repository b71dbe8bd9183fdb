//! End to end: every behaviour of the Mobula seed (001) from `conf/mobula.toml`,
//! on both stores, through real sockets.
#![allow(clippy::expect_used)]

#[macro_use]
mod common;

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

on_both_stores!(
    static_keys_work_raw_as_x_api_key_and_as_bearer,
    create_returns_the_documented_shape_with_defaults,
    create_validates_every_field,
    list_inspect_and_remaining_counting_down,
    exhausted_token_gets_429_saying_its_limit_is_used_up,
    tokens_only_as_bearer_never_x_api_key,
    revoked_token_is_refused_at_once,
    sixth_creation_in_a_minute_gets_429,
    only_startup_growth_and_enterprise_mint_tokens,
    expired_token_gets_401,
    tampered_or_foreign_tokens_get_401,
    revoking_the_static_key_kills_its_tokens,
    token_calls_are_recorded_under_the_parent_key,
    token_endpoints_need_the_static_key,
);

const PROFILE: &str = "mobula.toml";
const TOKENS: &str = "/api/2/auth/tokens";
const DATA: &str = "/api/1/market/data?asset=bitcoin";

fn setup(b: Backend) -> (Origin, Gate) {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(PROFILE, &origin.addr).backend(b));
    (origin, gate)
}

fn static_key(gate: &Gate, account: &str, plan: &str) -> String {
    gate.create_account(account, plan);
    gate.create_key(account, "server").1
}

fn raw(key: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", key.to_string())]
}

fn send(
    gate: &Gate,
    method: &str,
    path: &str,
    h: &[(&'static str, String)],
    body: Option<&str>,
) -> Resp {
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    gate.send(method, path, &h, body)
}

fn create(gate: &Gate, key: &str, body: &str) -> Resp {
    send(gate, "POST", TOKENS, &raw(key), Some(body))
}

fn mint(gate: &Gate, key: &str, body: &str) -> (String, String) {
    let r = create(gate, key, body);
    assert_eq!(r.status, 200, "{}", r.body);
    let t = &r.json()["createApiTokens"][0];
    (
        t["id"].as_str().expect("id").into(),
        t["token"].as_str().expect("token").into(),
    )
}

fn message(r: &Resp) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

fn static_keys_work_raw_as_x_api_key_and_as_bearer(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "free");
    assert!(key.starts_with("mb_") && key.len() == 43);
    assert_eq!(gate.get(DATA, &[("authorization", &key)]).status, 200);
    assert_eq!(gate.get(DATA, &[("x-api-key", &key)]).status, 200);
    assert_eq!(gate.get_with(DATA, &key).status, 200);
    let r = gate.get(DATA, &[("x-api-key", &key), ("authorization", &key)]);
    assert_eq!(r.status, 401, "two credentials conflict");
    assert_eq!(gate.get(DATA, &[]).status, 401);
    let echo = gate.get("/api/echo", &[("x-api-key", &key)]).json();
    assert!(
        echo["headers"].get("x-api-key").is_none(),
        "the key never reaches the origin"
    );
    assert_eq!(echo["headers"]["x-tollgate-account"], "acme");
}

fn create_returns_the_documented_shape_with_defaults(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "startup");
    let before = chrono::Utc::now();
    let r = create(&gate, &key, r#"{"count": 1}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let items = v["createApiTokens"].as_array().expect("array");
    assert_eq!(items.len(), 1);
    let t = items[0].as_object().expect("object");
    let keys: Vec<&str> = t.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    for k in [
        "id",
        "token",
        "expiresTimeString",
        "requestLimit",
        "remaining",
    ] {
        assert!(t.contains_key(k), "{k}");
    }
    assert_eq!(t["requestLimit"], json!("5000"), "default, as a string");
    assert_eq!(t["remaining"], json!("5000"));
    let exp_text = t["expiresTimeString"].as_str().expect("exp");
    assert!(
        exp_text.ends_with(".000Z") && exp_text.len() == 24,
        "{exp_text}"
    );
    let exp = chrono::DateTime::parse_from_rfc3339(exp_text)
        .expect("iso")
        .with_timezone(&chrono::Utc);
    let lifetime = (exp - before).num_seconds();
    assert!(
        (3598..=3600).contains(&lifetime),
        "default 1 h, got {lifetime} s"
    );
    assert!(t["token"].as_str().expect("jwt").starts_with("eyJ"));
    assert!(uuid::Uuid::parse_str(t["id"].as_str().expect("id")).is_ok());
    let r = create(
        &gate,
        &key,
        r#"{"expiresIn": 3600000, "count": 3, "requestLimit": "1000"}"#,
    );
    let items = r.json()["createApiTokens"]
        .as_array()
        .expect("array")
        .clone();
    assert_eq!(items.len(), 3);
    assert!(items
        .iter()
        .all(|t| t["requestLimit"] == "1000" && t["remaining"] == "1000"));
}

fn create_validates_every_field(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "growth");
    for (body, field) in [
        ("{}", "at least one"),
        ("", "at least one"),
        (r#"{"expiresIn": 59999}"#, "expiresIn"),
        (r#"{"expiresIn": 86400001}"#, "expiresIn"),
        (r#"{"expiresIn": "60000"}"#, "expiresIn"),
        (r#"{"expiresIn": 60000.5}"#, "expiresIn"),
        (r#"{"count": 0}"#, "count"),
        (r#"{"count": 26}"#, "count"),
        (r#"{"count": -1}"#, "count"),
        (r#"{"requestLimit": "0"}"#, "requestLimit"),
        (r#"{"requestLimit": "1000001"}"#, "requestLimit"),
        (r#"{"requestLimit": "-5"}"#, "requestLimit"),
        (r#"{"requestLimit": "ten"}"#, "requestLimit"),
        (r#"{"requestLimit": 1000}"#, "requestLimit"),
        (r#"{"count": 1, "scope": "all"}"#, "scope"),
        ("not json", "invalid JSON"),
    ] {
        let r = create(&gate, &key, body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(message(&r).contains(field), "{body}: {}", r.body);
    }
    // Edges are accepted. (Only two more creations fit in this minute.)
    assert_eq!(
        create(&gate, &key, r#"{"expiresIn": 60000, "count": 25}"#).status,
        200
    );
    assert_eq!(
        create(
            &gate,
            &key,
            r#"{"expiresIn": 86400000, "requestLimit": "1000000"}"#
        )
        .status,
        200
    );
}

fn list_inspect_and_remaining_counting_down(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "startup");
    let (id, token) = mint(&gate, &key, r#"{"requestLimit": "5"}"#);
    for left in ["4", "3"] {
        let r = gate.get_with(DATA, &token);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("x-token-requests-remaining"), Some(left));
    }
    let enc = |t: &str| {
        percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let r = send(
        &gate,
        "GET",
        &format!("/api/2/auth/token?token={}", enc(&token)),
        &raw(&key),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["apiToken"]["id"], json!(id));
    assert_eq!(v["apiToken"]["remaining"], "3");
    assert_eq!(v["apiToken"]["requestLimit"], "5");
    assert!(v["apiToken"].get("token").is_none());
    gate.get_with(DATA, &token);
    let r = send(
        &gate,
        "GET",
        &format!("/api/2/auth/token?token={token}"),
        &raw(&key),
        None,
    );
    assert_eq!(r.json()["apiToken"]["remaining"], "2", "counts down");
    let (id2, _) = mint(&gate, &key, r#"{"count": 1}"#);
    let r = send(&gate, "GET", TOKENS, &raw(&key), None);
    assert_eq!(r.status, 200);
    let list = r.json()["apiTokens"].as_array().expect("array").clone();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter().all(|t| t.get("token").is_none()),
        "no secrets in the list"
    );
    let ids: Vec<&str> = list.iter().filter_map(|t| t["id"].as_str()).collect();
    assert!(ids.contains(&id.as_str()) && ids.contains(&id2.as_str()));
    assert_eq!(
        list.iter().find(|t| t["id"] == json!(id)).expect("t")["remaining"],
        "2"
    );
    // Another key of the same account does not see them.
    let other = gate.create_key("acme", "other").1;
    let r = send(&gate, "GET", TOKENS, &raw(&other), None);
    assert_eq!(r.json()["apiTokens"].as_array().map(Vec::len), Some(0));
    let r = send(
        &gate,
        "GET",
        &format!("/api/2/auth/token?token={token}"),
        &raw(&other),
        None,
    );
    assert_eq!(r.status, 404);
    let r = send(&gate, "GET", "/api/2/auth/token", &raw(&key), None);
    assert_eq!(r.status, 400);
}

fn exhausted_token_gets_429_saying_its_limit_is_used_up(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "startup");
    let (_, token) = mint(&gate, &key, r#"{"requestLimit": "2"}"#);
    assert_eq!(gate.get_with(DATA, &token).status, 200);
    assert_eq!(gate.get_with(DATA, &token).status, 200);
    let r = gate.get_with(DATA, &token);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["code"], "REQUEST_LIMIT_EXHAUSTED");
    assert!(
        message(&r).contains("request limit (2 requests) is used up"),
        "{}",
        r.body
    );
    assert!(
        r.header("retry-after").is_none(),
        "waiting never helps a spent token"
    );
    assert!(!r.reached_origin());
    // The static key itself is not limited by its token.
    assert_eq!(gate.get(DATA, &[("x-api-key", &key)]).status, 200);
}

fn tokens_only_as_bearer_never_x_api_key(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "startup");
    let (_, token) = mint(&gate, &key, r#"{"count": 1}"#);
    for h in [
        ("x-api-key", token.as_str()),
        ("authorization", token.as_str()),
    ] {
        let r = gate.get(DATA, &[h]);
        assert_eq!(r.status, 401, "{h:?}");
        assert!(message(&r).contains("Authorization: Bearer"), "{}", r.body);
    }
    let r = gate.get_with(DATA, &token);
    assert_eq!(r.status, 200);
    let echo = gate.get_with("/api/echo", &token).json();
    assert_eq!(echo["headers"]["x-tollgate-account"], "acme");
    assert!(echo["headers"]["x-tollgate-token-id"].is_string());
    assert!(echo["headers"].get("authorization").is_none());
}

fn revoked_token_is_refused_at_once(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "enterprise");
    let (id, token) = mint(&gate, &key, r#"{"count": 1}"#);
    assert_eq!(gate.get_with(DATA, &token).status, 200);
    let r = send(&gate, "DELETE", &format!("{TOKENS}/{id}"), &raw(&key), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"deleteApiToken": id}));
    let r = gate.get_with(DATA, &token);
    assert_eq!(r.status, 401);
    assert!(message(&r).contains("revoked"));
    assert_eq!(
        send(&gate, "DELETE", &format!("{TOKENS}/{id}"), &raw(&key), None).status,
        404
    );
    let r = send(
        &gate,
        "GET",
        &format!("/api/2/auth/token?token={token}"),
        &raw(&key),
        None,
    );
    assert_eq!(r.status, 404);
    // Another key cannot revoke this key's tokens.
    let (id2, token2) = mint(&gate, &key, r#"{"count": 1}"#);
    let other = static_key(&gate, "other", "startup");
    assert_eq!(
        send(
            &gate,
            "DELETE",
            &format!("{TOKENS}/{id2}"),
            &raw(&other),
            None
        )
        .status,
        404
    );
    assert_eq!(gate.get_with(DATA, &token2).status, 200);
}

fn sixth_creation_in_a_minute_gets_429(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "startup");
    for i in 0..5 {
        assert_eq!(
            create(&gate, &key, r#"{"count": 1}"#).status,
            200,
            "creation {i}"
        );
    }
    let r = create(&gate, &key, r#"{"count": 1}"#);
    assert_eq!(r.status, 429);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=12).contains(&retry), "{retry}");
    // Per static key: another key of the same account may still create.
    let second = gate.create_key("acme", "second").1;
    assert_eq!(create(&gate, &second, r#"{"count": 1}"#).status, 200);
    // Listing is not a creation.
    assert_eq!(send(&gate, "GET", TOKENS, &raw(&key), None).status, 200);
}

fn only_startup_growth_and_enterprise_mint_tokens(b: Backend) {
    let (_o, gate) = setup(b);
    let free = static_key(&gate, "f", "free");
    let r = create(&gate, &free, r#"{"count": 1}"#);
    assert_eq!(r.status, 403);
    assert_eq!(
        message(&r),
        "short-lived tokens are not available on the free plan"
    );
    for plan in ["startup", "growth", "enterprise"] {
        let key = static_key(&gate, plan, plan);
        assert_eq!(create(&gate, &key, r#"{"count": 1}"#).status, 200, "{plan}");
    }
}

fn expired_token_gets_401(b: Backend) {
    // The profile's minimum lifetime is a minute; a test copy allows one second.
    let profile = std::fs::read_to_string(root().join("conf").join(PROFILE)).expect("profile");
    let fast = profile.replace(
        r#"min_expires_in = "60000ms""#,
        r#"min_expires_in = "1000ms""#,
    );
    assert_ne!(fast, profile);
    let path = std::env::temp_dir().join(format!(
        "mobula-fast-{}-{}.toml",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&path, fast).expect("write");
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(&path.display().to_string(), &origin.addr).backend(b));
    let key = static_key(&gate, "acme", "startup");
    let (_, token) = mint(&gate, &key, r#"{"expiresIn": 1000}"#);
    let r = eventually(Duration::from_secs(4), || {
        let r = gate.get_with(DATA, &token);
        (r.status == 401).then_some(r)
    });
    assert!(message(&r).contains("expired"), "{}", r.body);
    let r = send(&gate, "GET", TOKENS, &raw(&key), None);
    assert_eq!(
        r.json()["apiTokens"].as_array().map(Vec::len),
        Some(0),
        "expired tokens are not listed"
    );
}

fn tampered_or_foreign_tokens_get_401(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "startup");
    let (_, token) = mint(&gate, &key, r#"{"requestLimit": "5"}"#);
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: Value =
        serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
    payload["lim"] = json!(1_000_000);
    payload["plan"] = json!("enterprise");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(payload.to_string()),
        parts[2]
    );
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        parts[1]
    );
    let wrong_sig = format!("{}.{}.{}", parts[0], parts[1], b64.encode([7u8; 32]));
    for (name, t) in [
        ("tampered", tampered),
        ("alg none", none),
        ("bad signature", wrong_sig),
    ] {
        let r = gate.get_with(DATA, &t);
        assert_eq!(r.status, 401, "{name}");
        assert!(!r.reached_origin());
    }
    // A token from another deployment (different secret) is refused.
    let origin2 = start_origin();
    let other = start_gate(GateOpts::new(PROFILE, &origin2.addr).env(
        "TOLLGATE_JWT_SECRET",
        "another-deployment-secret-0123456789abcdef",
    ));
    let other_key = static_key(&other, "acme", "startup");
    let (_, foreign) = mint(&other, &other_key, r#"{"count": 1}"#);
    assert_eq!(other.get_with(DATA, &foreign).status, 200);
    assert_eq!(gate.get_with(DATA, &foreign).status, 401);
}

fn revoking_the_static_key_kills_its_tokens(b: Backend) {
    let (_o, gate) = setup(b);
    gate.create_account("acme", "growth");
    let (key_id, key) = gate.create_key("acme", "server");
    let (_, token) = mint(&gate, &key, r#"{"count": 1}"#);
    assert_eq!(gate.get_with(DATA, &token).status, 200);
    assert_eq!(
        gate.admin("DELETE", &format!("/v1/keys/{key_id}"), None)
            .status,
        200
    );
    assert_eq!(gate.get_with(DATA, &token).status, 401);
    assert_eq!(gate.get(DATA, &[("x-api-key", &key)]).status, 401);
}

fn token_calls_are_recorded_under_the_parent_key(b: Backend) {
    let (_o, gate) = setup(b);
    gate.create_account("acme", "startup");
    let (key_id, key) = gate.create_key("acme", "server");
    let (token_id, token) = mint(&gate, &key, r#"{"count": 1}"#);
    gate.get_with(DATA, &token);
    gate.get(DATA, &[("x-api-key", &key)]);
    let usage = eventually(Duration::from_secs(3), || {
        let u = gate
            .admin("GET", &format!("/v1/keys/{key_id}/usage"), None)
            .json();
        (u["recentCalls"].as_array().map(Vec::len) == Some(3)).then_some(u)
    });
    // Newest first: the static key's call, the token's call, the token creation.
    let calls = usage["recentCalls"].as_array().expect("calls");
    assert_eq!(calls[1]["viaToken"], json!(token_id));
    assert_eq!(calls[1]["path"], "/api/1/market/data");
    assert!(calls[0]["viaToken"].is_null());
    assert_eq!(calls[2]["path"], TOKENS);
    let m = gate.metrics();
    assert!(
        m.contains("decision=\"managed\",route=\"short_lived\",status=\"200\""),
        "{m}"
    );
    assert!(
        m.contains("tollgate_short_lived_tokens_total{event=\"created\"} 1"),
        "{m}"
    );
}

fn token_endpoints_need_the_static_key(b: Backend) {
    let (_o, gate) = setup(b);
    let key = static_key(&gate, "acme", "startup");
    let (_, token) = mint(&gate, &key, r#"{"count": 1}"#);
    let r = gate.send(
        "POST",
        TOKENS,
        &[("authorization", &format!("Bearer {token}"))],
        Some(r#"{"count": 1}"#),
    );
    assert_eq!(r.status, 401);
    assert!(message(&r).contains("static API key"));
    assert_eq!(gate.send("POST", TOKENS, &[], Some("{}")).status, 401);
    assert_eq!(
        send(&gate, "PUT", TOKENS, &raw(&key), Some("{}")).status,
        405
    );
}
