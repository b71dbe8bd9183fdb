//! End to end: seed-fidelity fixes from the black-box audit (issue #8), on both
//! stores, through real sockets.
//!
//! * MobiusQuant (seed 000): a request body of the wrong shape is a 422 with a
//!   validation array; the other profiles keep their 400.
//! * MobiusQuant: revoked (and expired) tokens are hidden from listings unless
//!   asked for (`?include=`, `tollgate keys list --all`).
//! * QuantConomy (seed 002): revoking a key answers the same `lastUsedAt` as
//!   the listing.
#![allow(clippy::expect_used)]

#[macro_use]
mod common;

on_both_stores!(
    mobiusquant_trial_body_errors_are_422_with_a_validation_array,
    mobiusquant_admin_body_errors_are_422_with_a_validation_array,
    other_profiles_keep_their_400_for_body_errors,
    admin_listing_hides_revoked_and_expired_keys_unless_asked,
    cli_keys_list_shows_inactive_keys_with_all,
    admin_revoke_answers_the_listings_last_used_at,
    quantconomy_delete_answers_the_listings_last_used_at,
);

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const TRIAL: &str = "/api/auth/trial-token";
const KEYS: &str = "/api/v1/account/api-keys";

/// A MobiusQuant gateway whose trial issuance needs human verification (the
/// stub answers success for `human-ok`).
fn mobiusquant(b: Backend) -> (Siteverify, Origin, Gate) {
    let stub = start_siteverify("turnstile-secret", "human-ok");
    let origin = start_origin();
    let gate = start_gate(
        GateOpts::new("mobiusquant.toml", &origin.addr)
            .backend(b)
            .env("TOLLGATE_TURNSTILE_URL", &stub.url)
            .env("TOLLGATE_TURNSTILE_SECRET", "turnstile-secret"),
    );
    (stub, origin, gate)
}

fn setup(profile: &str, b: Backend) -> (Origin, Gate) {
    let origin = start_origin();
    let gate = start_gate(GateOpts::new(profile, &origin.addr).backend(b));
    (origin, gate)
}

/// A 422 whose body is `{"detail": [one problem]}`; returns the problem.
fn one_problem(r: &Resp) -> Value {
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["detail".to_string()]),
        "{}",
        r.body
    );
    let items = v["detail"].as_array().expect("validation array");
    assert_eq!(items.len(), 1, "{}", r.body);
    let item = items[0].clone();
    assert!(
        item["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{item}"
    );
    item
}

fn assert_problem(r: &Resp, loc: Value, kind: &str, msg: &str) {
    assert_eq!(
        one_problem(r),
        json!({"loc": loc, "msg": msg, "type": kind}),
        "{}",
        r.body
    );
}

fn mobiusquant_trial_body_errors_are_422_with_a_validation_array(b: Backend) {
    let (_stub, _o, gate) = mobiusquant(b);
    // A wrong type.
    let r = gate.send("POST", TRIAL, &[], Some(r#"{"name": 123}"#));
    assert_problem(
        &r,
        json!(["body", "name"]),
        "string_type",
        "Input should be a valid string",
    );
    // An unknown field.
    let r = gate.send(
        "POST",
        TRIAL,
        &[],
        Some(r#"{"captchaToken": "human-ok", "admin": true}"#),
    );
    assert_problem(
        &r,
        json!(["body", "admin"]),
        "extra_forbidden",
        "Extra inputs are not permitted",
    );
    // A missing required field: the human-verification token.
    let r = gate.send("POST", TRIAL, &[], Some(r#"{"name": "eval"}"#));
    assert_problem(
        &r,
        json!(["body", "captchaToken"]),
        "missing",
        "Field required",
    );
    // Not JSON at all.
    let r = gate.send("POST", TRIAL, &[], Some("{not json"));
    let item = one_problem(&r);
    assert_eq!(item["loc"], json!(["body"]));
    assert_eq!(item["type"], "json_invalid");
    assert!(
        item["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("JSON decode error")),
        "{item}"
    );
    // Business errors keep their status: a failed check is still a 403.
    let r = gate.send("POST", TRIAL, &[], Some(r#"{"captchaToken": "bot"}"#));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json(), json!({"detail": "human verification failed"}));
    // A good body still gets its token.
    let r = gate.send(
        "POST",
        TRIAL,
        &[],
        Some(r#"{"name": "eval", "captchaToken": "human-ok"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Counted as validation rejections, not as bad requests.
    let m = gate.metrics();
    assert!(
        m.contains("tollgate_rejections_total{reason=\"validation\"} 4"),
        "{m}"
    );
    assert!(!m.contains("reason=\"bad_request\""), "{m}");
}

fn mobiusquant_admin_body_errors_are_422_with_a_validation_array(b: Backend) {
    let (_stub, _o, gate) = mobiusquant(b);
    let r = gate.admin("POST", "/v1/accounts", Some(json!({"id": "acme"})));
    assert_problem(&r, json!(["body", "plan"]), "missing", "Field required");
    let r = gate.admin(
        "POST",
        "/v1/accounts",
        Some(json!({"id": "acme", "plan": "token", "x": 1})),
    );
    assert_problem(
        &r,
        json!(["body", "x"]),
        "extra_forbidden",
        "Extra inputs are not permitted",
    );
    let r = gate.admin(
        "POST",
        "/v1/accounts",
        Some(json!({"id": 5, "plan": "token"})),
    );
    assert_problem(
        &r,
        json!(["body", "id"]),
        "string_type",
        "Input should be a valid string",
    );
    let r = gate.admin("POST", "/v1/accounts", Some(json!(["acme", "token"])));
    assert_eq!(one_problem(&r)["type"], "model_attributes_type");
    // A well-formed body with a bad value is a business error: 400, as before.
    let r = gate.admin(
        "POST",
        "/v1/accounts",
        Some(json!({"id": "acme", "plan": "gold"})),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["detail"]
        .as_str()
        .is_some_and(|d| d.contains("gold")));
    gate.create_account("acme", "token");
    let r = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "acme", "name": "x", "expiresAt": "tomorrow"})),
    );
    let item = one_problem(&r);
    assert_eq!(item["loc"], json!(["body", "expiresAt"]), "{item}");
}

fn other_profiles_keep_their_400_for_body_errors(b: Backend) {
    // QuantConomy: self-service key creation and the admin API.
    let (_o, gate) = setup("quantconomy.toml", b);
    gate.create_account("acme", "professional");
    let (_, key) = gate.create_key("acme", "primary");
    let auth = format!("Bearer {key}");
    let r = gate.send(
        "POST",
        KEYS,
        &[("authorization", &auth)],
        Some(r#"{"name": 123}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"error": {"code": "BAD_REQUEST", "message": "invalid JSON body: field name: invalid type: integer `123`, expected a string at line 1 column 12"}})
    );
    let r = gate.send("POST", KEYS, &[("authorization", &auth)], Some("{oops"));
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], "BAD_REQUEST");
    assert!(v["error"].get("details").is_none(), "{v}");
    let r = gate.admin("POST", "/v1/accounts", Some(json!({"id": "x"})));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"error": {"code": "BAD_REQUEST", "message": "invalid JSON body: missing field `plan` at line 1 column 10"}})
    );
    drop(gate);
    // Mobula: short-lived token creation.
    let (_o, gate) = setup("mobula.toml", b);
    gate.create_account("acme", "growth");
    let (_, key) = gate.create_key("acme", "server");
    let r = gate.send(
        "POST",
        "/api/2/auth/tokens",
        &[("authorization", &key)],
        Some(r#"{"expiresIn": 60000, "bogus": 1}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["code"], "BAD_REQUEST");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("bogus")),
        "{v}"
    );
}

/// Creates `acme` (MobiusQuant `token` plan) with an active, a revoked and an
/// expired key; returns their ids in that order once the expired one expired.
fn three_keys(gate: &Gate) -> [String; 3] {
    gate.create_account("acme", "token");
    let (active, _) = gate.create_key("acme", "active");
    let (revoked, _) = gate.create_key("acme", "revoked");
    let r = gate.admin("DELETE", &format!("/v1/keys/{revoked}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let r = gate.admin(
        "POST",
        "/v1/keys",
        Some(json!({"account": "acme", "name": "expired", "expiresAt": soon})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let expired = r.json()["id"].as_str().expect("id").to_string();
    eventually(Duration::from_secs(5), || {
        let v = gate
            .admin("GET", &format!("/v1/keys/{expired}"), None)
            .json();
        (v["isActive"] == false).then_some(())
    });
    [active, revoked, expired]
}

fn listed(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

fn admin_listing_hides_revoked_and_expired_keys_unless_asked(b: Backend) {
    let (_stub, _o, gate) = mobiusquant(b);
    let [active, revoked, expired] = three_keys(&gate);
    let list = |query: &str| {
        let r = gate.admin("GET", &format!("/v1/keys?account=acme{query}"), None);
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        listed(&r.json())
    };
    assert_eq!(list(""), sorted(&[&active]));
    assert_eq!(list("&include=revoked"), sorted(&[&active, &revoked]));
    assert_eq!(list("&include=expired"), sorted(&[&active, &expired]));
    assert_eq!(
        list("&include=revoked,expired"),
        sorted(&[&active, &revoked, &expired])
    );
    assert_eq!(list("&include=all"), sorted(&[&active, &revoked, &expired]));
    let r = gate.admin("GET", "/v1/keys?account=acme&include=deleted", None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("include"), "{}", r.body);
    // The account view still counts only active keys.
    let acc = gate.admin("GET", "/v1/accounts/acme", None).json();
    assert_eq!(acc["activeKeys"], 1);
}

fn cli_keys_list_shows_inactive_keys_with_all(b: Backend) {
    let (_stub, _o, gate) = mobiusquant(b);
    let [active, revoked, expired] = three_keys(&gate);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .env("TOLLGATE_ADMIN_URL", &gate.admin_url)
            .env("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .expect("cli");
        assert!(out.status.success(), "{args:?}: {out:?}");
        listed(&serde_json::from_slice(&out.stdout).expect("cli json"))
    };
    assert_eq!(
        cli(&["keys", "list", "--account", "acme"]),
        sorted(&[&active])
    );
    assert_eq!(
        cli(&["keys", "list", "--account", "acme", "--all"]),
        sorted(&[&active, &revoked, &expired])
    );
}

fn admin_revoke_answers_the_listings_last_used_at(b: Backend) {
    let (_stub, _o, gate) = mobiusquant(b);
    gate.create_account("acme", "token");
    let (id, token) = gate.create_key("acme", "k");
    assert_eq!(gate.get_with("/api/markets", &token).status, 200);
    let listed_at = eventually(Duration::from_secs(5), || {
        let v = gate.admin("GET", "/v1/keys?account=acme", None).json();
        v["keys"][0]["lastUsedAt"].as_str().map(String::from)
    });
    let r = gate.admin("DELETE", &format!("/v1/keys/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["isActive"], false);
    assert_eq!(v["lastUsedAt"], json!(listed_at));
    let v = gate
        .admin("GET", "/v1/keys?account=acme&include=revoked", None)
        .json();
    assert_eq!(v["keys"][0]["lastUsedAt"], json!(listed_at));
}

fn quantconomy_delete_answers_the_listings_last_used_at(b: Backend) {
    let (_o, gate) = setup("quantconomy.toml", b);
    gate.create_account("acme", "professional");
    let (_, manager) = gate.create_key("acme", "manager");
    let (id, used) = gate.create_key("acme", "used");
    assert_eq!(gate.get_with("/api/v1/entries", &used).status, 200);
    let entry = |list: &Value| {
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|k| k["id"] == json!(id))
            .cloned()
            .expect("the used key is listed")
    };
    let listed_at = eventually(Duration::from_secs(5), || {
        let r = gate.get_with(KEYS, &manager);
        assert_eq!(r.status, 200, "{}", r.body);
        entry(&r.json())["lastUsedAt"].as_str().map(String::from)
    });
    let r = gate.send(
        "DELETE",
        &format!("{KEYS}/{id}"),
        &[("authorization", &format!("Bearer {manager}"))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let deleted = r.json()["data"].clone();
    assert_eq!(deleted["isActive"], false);
    assert_eq!(deleted["lastUsedAt"], json!(listed_at));
    // The document's listing shows every key with isActive: a revoked one stays
    // listed (inactive), with the same lastUsedAt.
    let after = entry(&gate.get_with(KEYS, &manager).json());
    assert_eq!(after["isActive"], false);
    assert_eq!(after["lastUsedAt"], deleted["lastUsedAt"]);
}
