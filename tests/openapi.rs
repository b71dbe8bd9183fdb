//! The checked-in OpenAPI documents (`docs/openapi/<profile>.json`): each is
//! what `tollgate openapi` prints for its shipped profile today, and each
//! describes the admin API, the profile's configured endpoints and every
//! error status. Live responses against these documents: `tests/openapi_live.rs`.
#![allow(clippy::expect_used)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// The variables the shipped profiles need to load (as `scripts/test.sh` sets them).
fn env(name: &str) -> Option<String> {
    match name {
        "TOLLGATE_ADMIN_TOKEN" => Some("check-token-0123456789".into()),
        "TOLLGATE_TURNSTILE_SECRET" => Some("check-turnstile-secret".into()),
        _ => None,
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every shipped profile, by name.
fn profiles() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join("conf"))
        .expect("conf/")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no profiles in conf/");
    out
}

fn conf(profile: &str) -> PathBuf {
    root().join("conf").join(format!("{profile}.toml"))
}

fn generated(profile: &str) -> String {
    tollgate::openapi::generate(&conf(profile), &env).expect("the profile loads")
}

fn checked_in(profile: &str) -> String {
    let path = root().join("docs/openapi").join(format!("{profile}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate it with scripts/openapi.sh",
            path.display()
        )
    })
}

fn doc(profile: &str) -> Value {
    serde_json::from_str(&generated(profile)).expect("JSON")
}

#[test]
fn checked_in_documents_match_their_profiles() {
    for profile in profiles() {
        assert!(
            generated(profile.as_str()) == checked_in(&profile),
            "docs/openapi/{profile}.json is out of date with conf/{profile}.toml or the code: \
             regenerate every document with `scripts/openapi.sh` (or `tollgate openapi --config \
             conf/{profile}.toml > docs/openapi/{profile}.json`) and review the diff"
        );
    }
    let docs: Vec<String> = std::fs::read_dir(root().join("docs/openapi"))
        .expect("docs/openapi/")
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(String::from))
        .collect();
    for name in docs {
        assert!(
            profiles().contains(&name),
            "docs/openapi/{name}.json has no profile conf/{name}.toml: remove it"
        );
    }
}

#[test]
fn the_command_prints_the_checked_in_document() {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["openapi", "--config"])
        .arg(conf("quantconomy"))
        .env("TOLLGATE_ADMIN_TOKEN", "check-token-0123456789")
        .output()
        .expect("tollgate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout) == checked_in("quantconomy"),
        "`tollgate openapi` does not print docs/openapi/quantconomy.json: run scripts/openapi.sh"
    );
    // A profile that does not load: the check's report, exit status 1.
    let bad = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["openapi", "--config"])
        .arg(conf("mobiusquant"))
        .env_remove("TOLLGATE_TURNSTILE_SECRET")
        .output()
        .expect("tollgate runs");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("trial.verification.secret"));
    assert!(bad.stdout.is_empty());
}

/// The admin routes `src/management/admin/mod.rs` dispatches.
const ADMIN: [(&str, &str); 10] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/v1/accounts"),
    ("get", "/v1/accounts/{id}"),
    ("post", "/v1/accounts/{id}/credits"),
    ("post", "/v1/keys"),
    ("get", "/v1/keys"),
    ("get", "/v1/keys/{id}"),
    ("delete", "/v1/keys/{id}"),
    ("get", "/v1/keys/{id}/usage"),
];

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "no {method} {path}");
    op
}

#[test]
fn every_admin_route_is_described_with_its_security() {
    for profile in profiles() {
        let doc = doc(&profile);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["adminToken"]["scheme"],
            "bearer"
        );
        for (method, path) in ADMIN {
            let op = operation(&doc, path, method);
            let open = path == "/healthz" || path == "/readyz";
            let security = if open { "[]" } else { r#"[{"adminToken":[]}]"# };
            assert_eq!(
                op["security"].to_string(),
                security,
                "{profile}: {method} {path}"
            );
            assert!(
                doc["paths"][path]["servers"].is_array(),
                "{path}: the admin listener"
            );
            if !open {
                assert!(op["responses"]["401"].is_object(), "{method} {path}: 401");
            }
        }
        let key = &doc["components"]["schemas"]["IssuedKey"]["required"];
        for field in ["id", "token", "keyPrefix", "name", "createdAt", "expiresAt"] {
            assert!(
                key.as_array().expect("required").contains(&field.into()),
                "{field}"
            );
        }
    }
}

/// `(method, path)` of the client-facing endpoints a profile configures.
fn configured_endpoints(profile: &str) -> Vec<(&'static str, String)> {
    let text = std::fs::read_to_string(conf(profile)).expect("profile");
    let file: toml::Value = toml::from_str(&text).expect("TOML");
    let get = |table: &str, key: &str| file.get(table)?.get(key)?.as_str().map(String::from);
    let mut out = Vec::new();
    if let Some(p) = get("trial", "path") {
        out.push(("post", p));
    }
    if let Some(p) = get("self_service", "path") {
        out.extend([
            ("get", p.clone()),
            ("post", p.clone()),
            ("delete", format!("{p}/{{id}}")),
        ]);
    }
    if let (Some(t), Some(i)) = (
        get("short_lived", "tokens_path"),
        get("short_lived", "inspect_path"),
    ) {
        out.extend([
            ("get", t.clone()),
            ("post", t.clone()),
            ("delete", format!("{t}/{{id}}")),
            ("get", i),
        ]);
    }
    out
}

#[test]
fn configured_endpoints_are_at_their_paths() {
    let mut seen = 0;
    for profile in profiles() {
        let doc = doc(&profile);
        for (method, path) in configured_endpoints(&profile) {
            let op = operation(&doc, &path, method);
            assert!(
                op["responses"]["429"].is_object() || path.contains("trial"),
                "{path}: 429"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 8,
        "the shipped profiles configure trial, self-service and token endpoints"
    );
    // The profiles' own field names.
    let qc = doc("quantconomy");
    let created = &qc["paths"]["/api/v1/account/api-keys"]["post"]["responses"]["201"];
    let data = &created["content"]["application/json"]["schema"]["properties"]["data"];
    assert!(data["properties"]["apiKey"].is_object(), "{data}");
    let mb = doc("mobula");
    let minted = &mb["paths"]["/api/2/auth/tokens"]["post"]["responses"]["200"];
    let schema = &minted["content"]["application/json"]["schema"];
    assert_eq!(schema["required"], serde_json::json!(["createApiTokens"]));
    let mq = doc("mobiusquant");
    let trial = &mq["paths"]["/api/auth/trial-token"]["post"]["requestBody"];
    let body = &trial["content"]["application/json"]["schema"];
    assert_eq!(body["required"], serde_json::json!(["captchaToken"]));
}

#[test]
fn every_error_status_has_its_response() {
    let all = [
        ("BadRequest", 400),
        ("Unauthorized", 401),
        ("PaymentRequired", 402),
        ("Forbidden", 403),
        ("NotFound", 404),
        ("MethodNotAllowed", 405),
        ("Conflict", 409),
        ("PayloadTooLarge", 413),
        ("TooManyRequests", 429),
        ("HeadersTooLarge", 431),
        ("InternalError", 500),
        ("BadGateway", 502),
        ("ServiceUnavailable", 503),
    ];
    for profile in profiles() {
        let doc = doc(&profile);
        let responses = &doc["components"]["responses"];
        for (name, status) in all {
            let r = &responses[name];
            let description = r["description"].as_str().unwrap_or_default();
            assert!(
                description.starts_with(&status.to_string()),
                "{profile}: {name}: {r}"
            );
            assert!(
                r["content"]["application/json"]["schema"].is_object(),
                "{name}"
            );
        }
        let headers = &responses["TooManyRequests"]["headers"];
        for h in [
            "Retry-After",
            "X-RateLimit-Limit",
            "RateLimit-Policy",
            "RateLimit",
        ] {
            assert!(headers[h].is_object(), "{profile}: 429 {h}");
        }
        assert!(responses["BadGateway"]["headers"]["Retry-After"].is_object());
        assert_eq!(
            responses["MethodNotAllowed"]["headers"]["Allow"]["required"],
            true
        );
    }
    // The profile with a validation template has its status too.
    let mq = doc("mobiusquant");
    let v = &mq["components"]["responses"]["ValidationFailed"];
    assert!(v["description"]
        .as_str()
        .is_some_and(|d| d.starts_with("422")));
    let trial = &mq["paths"]["/api/auth/trial-token"]["post"]["responses"];
    assert!(trial["422"].is_object());
}

#[test]
fn metered_routes_carry_the_profile_credentials_and_refusals() {
    for profile in profiles() {
        let doc = doc(&profile);
        let schemes = doc["components"]["securitySchemes"]
            .as_object()
            .expect("schemes");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                if op["tags"][0] != "routes" || op["security"] == serde_json::json!([]) {
                    continue;
                }
                for alternative in op["security"].as_array().expect("security") {
                    for scheme in alternative.as_object().expect("alternative").keys() {
                        assert!(schemes.contains_key(scheme), "{profile}: {scheme}");
                    }
                }
                for status in ["400", "401", "403", "429", "502", "503"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{profile}: {method} {path}: {status}"
                    );
                }
            }
        }
    }
    // Mobula accepts three forms; quantconomy charges credits on its routes.
    let mb = doc("mobula");
    let forms = mb["components"]["securitySchemes"]
        .as_object()
        .expect("schemes");
    assert!(["bearer", "rawAuthorization", "apiKeyHeader"]
        .iter()
        .all(|s| forms.contains_key(*s)));
    let qc = doc("quantconomy");
    assert!(qc["paths"]["/{path}"]["get"]["responses"]["402"].is_object());
    assert_eq!(
        qc["paths"]["/health"]["get"]["security"],
        serde_json::json!([])
    );
}
