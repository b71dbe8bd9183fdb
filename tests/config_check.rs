#![allow(clippy::expect_used)]
//! `tollgate check`: every bad-config fixture under `tests/fixtures/bad/` is
//! rejected with its exact `key: message`, problems are collected rather than
//! reported one at a time, and the shipped configs in `conf/` pass.
//!
//! These run in process through [`tollgate::config::check`], the function the
//! `check` command prints the result of; one smoke test runs the real binary
//! and compares its exit status and output with it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tollgate::config;

/// Fixture file name -> text its `check` output must contain on stderr.
///
/// Each fixture is otherwise valid, so exactly this one problem is reported.
const BAD: &[(&str, &str)] = &[
    (
        "route_cost_above_every_budget.toml",
        "routes[0].cost: 500 is above every plan's credit budget (largest: 100); no call could ever be paid",
    ),
    (
        "shared_plan_per_account_credits.toml",
        "plans.demo.credits.pool: a shared plan pools its callers, so its credits cannot be per account: use pool = \"plan\"",
    ),
    (
        "pooled_credits_not_shared.toml",
        "plans.team.credits.pool: a pooled balance belongs to a shared plan (set shared = true)",
    ),
    (
        "pooled_credits_without_refill.toml",
        "plans.demo.credits.refill: a pooled balance needs a refill period (nobody can top it up)",
    ),
    (
        "anonymous_plan_with_credits.toml",
        "anonymous.plan: plan \"anon\" meters credits, but anonymous callers have no account to charge",
    ),
    (
        "route_plan_undefined.toml",
        "routes[0].plans[0]: plan \"gold\" is not defined",
    ),
    (
        "public_key_plan_undefined.toml",
        "keys.public[0].plan: plan \"demo\" is not defined (defined: free)",
    ),
    (
        "plan_max_results_zero.toml",
        "plans.free.max_results: must be at least 1 (omit it for no cap)",
    ),
    (
        "route_bad_store_failure.toml",
        "routes[0].on_store_failure: \"fail_sometimes\" is not fail_open or fail_closed",
    ),
    (
        "redis_url_bad_scheme.toml",
        "store.redis_url: \"http://127.0.0.1:6379\" must start with redis:// or rediss://",
    ),
    (
        "unknown_top_level_key.toml",
        "bogus: unknown field `bogus`, expected one of `server`, `admin`",
    ),
    (
        "unknown_plan_key.toml",
        "plans.free.limit: unknown field `limit`, expected one of `rate`, `window`, `burst`, `max_active_keys`",
    ),
    ("plan_rate_zero.toml", "plans.free.rate: must be at least 1"),
    (
        "plan_bad_window_unit.toml",
        "plans.free.window: unknown unit \"w\" in \"3w\" (use ms, s, m, h or d)",
    ),
    ("plan_burst_zero.toml", "plans.free.burst: must be at least 1"),
    (
        "plan_max_active_keys_zero.toml",
        "plans.free.max_active_keys: must be at least 1 (omit it for no cap)",
    ),
    (
        "anonymous_plan_undefined.toml",
        "anonymous.plan: plan \"gold\" is not defined (defined: free)",
    ),
    (
        "route_origin_undefined.toml",
        "routes[0].origin: origin \"nowhere\" is not defined",
    ),
    (
        "route_bad_access.toml",
        "routes[0].access: \"private\" is not one of public, anonymous, key",
    ),
    (
        "route_duplicate_name.toml",
        "routes[1].name: route name \"api\" is used twice",
    ),
    (
        "route_star_not_last.toml",
        "routes[0].paths[0]: \"/api/*/quotes\": '*' may only be the last segment",
    ),
    (
        "route_lowercase_method.toml",
        "routes[0].methods[0]: \"get\" is not an upper-case HTTP method",
    ),
    (
        "origin_no_servers.toml",
        "origins.api.servers: needs at least one host:port",
    ),
    (
        "origin_server_not_host_port.toml",
        "origins.api.servers: \"localhost\" is not host:port",
    ),
    (
        "server_bad_listen.toml",
        "server.listen: \"localhost:8080\" is not an address like 127.0.0.1:8080",
    ),
    (
        "server_max_requests_zero.toml",
        "server.max_requests_per_connection: must be at least 1",
    ),
    (
        "server_log_format_unknown.toml",
        "server.log_format: \"logfmt\" is not text or json",
    ),
    (
        "server_header_timeout_no_unit.toml",
        "server.request_header_timeout: \"10\" has no unit (use ms, s, m, h or d)",
    ),
    (
        "tls_listen_without_certificates.toml",
        "server.tls.certificates: needs at least one certificate (the first is the default)",
    ),
    (
        "tls_certificates_without_listen.toml",
        "server.tls.listen: certificates are configured but there is no address to serve them on",
    ),
    (
        "tls_certificate_missing.toml",
        "server.tls.certificates[0].cert: cannot read \"/nonexistent/tollgate/cert.pem\": No such file or directory (os error 2)",
    ),
    (
        "upstream_keepalive_pool_zero.toml",
        "server.upstream_keepalive_pool: must be between 1 and 65536",
    ),
    (
        "compression_level_out_of_range.toml",
        "server.compression.level: must be between 1 and 9",
    ),
    (
        "compression_type_not_text.toml",
        "server.compression.types[0]: \"image/png\" is not a text/… or application/… media type (type/subtype or type/*)",
    ),
    (
        "admin_token_short.toml",
        "admin.token: must be at least 16 characters",
    ),
    (
        "trusted_proxies_bad_cidr.toml",
        "client_ip.trusted_proxies: \"not-a-cidr\" is not a CIDR like 10.0.0.0/8 or an IP",
    ),
    (
        "trusted_proxies_without_header.toml",
        "client_ip.header: trusted_proxies is set but no header is named",
    ),
    (
        "ipv6_prefix_zero.toml",
        "client_ip.ipv6_prefix: must be between 1 and 128",
    ),
    (
        "no_credential_form.toml",
        "credentials: enable at least one of bearer, raw_authorization, x_api_key",
    ),
    (
        "keys_alphabet_unknown.toml",
        "keys.alphabet: \"base32\" is not base62 or base64url",
    ),
    (
        "keys_random_length_small.toml",
        "keys.random_length: must be between 16 and 128 (at least 16 for enough entropy)",
    ),
    (
        "errors_template_not_table.toml",
        "errors.template: must be a table, e.g. { detail = \"{message}\" }",
    ),
    (
        "errors_unknown_message_kind.toml",
        "errors.messages.teapot: unknown error kind (known: bad_request, unauthorized,",
    ),
    (
        "errors_validation_status_not_4xx.toml",
        "errors.validation.status: 200 is not a 4xx status (e.g. 400 or 422)",
    ),
    (
        "errors_validation_item_not_table.toml",
        "errors.validation.item: must be a table or a string, e.g. { loc = \"{loc}\", msg = \"{msg}\", type = \"{type}\" }",
    ),
    (
        "trial_plan_undefined.toml",
        "trial.plan: plan \"gold\" is not defined (defined: free)",
    ),
    (
        "trial_verification_url_not_http.toml",
        "trial.verification.siteverify_url: must be an http:// or https:// URL",
    ),
    (
        "trial_verification_secret_empty.toml",
        "trial.verification.secret: must be set: without it trial keys would be issued without human verification; set the siteverify secret, or replace the [trial.verification] table with verification = \"off\" under [trial] to issue them unverified",
    ),
    (
        "trial_verification_missing.toml",
        "trial.verification: is missing: trial keys would be issued without human verification; add a [trial.verification] table with a secret, or write verification = \"off\" under [trial] to issue them unverified",
    ),
    (
        "trial_verification_not_off.toml",
        "trial.verification: \"on\" is not \"off\"; to verify trial requests, write a [trial.verification] table instead",
    ),
    (
        "trial_issue_rate_zero.toml",
        "trial.issue_rate: must be at least 1 (omit it for no cap)",
    ),
    (
        "trial_issue_window_without_rate.toml",
        "trial.issue_window: is set, but issue_rate is not: without issue_rate there is no cap (set both, or neither)",
    ),
    (
        "plan_credits_budget_too_large.toml",
        "plans.free.credits.budget: 1000000000000001 is above the largest credit amount, 1000000000000000 (10^15): balances beyond it lose precision in the Redis scripts",
    ),
    (
        "env_var_unset.toml",
        "origins.api.servers[0]: environment variable TOLLGATE_FIXTURE_UNSET is not set and has no default (write ${TOLLGATE_FIXTURE_UNSET:-default})",
    ),
    (
        "toml_syntax_error.toml",
        "is not valid TOML: TOML parse error at line 4",
    ),
    (
        "anonymous_route_without_section.toml",
        "routes[0].access: an anonymous route needs an [anonymous] section with a plan",
    ),
    (
        "health_check_unknown_kind.toml",
        "origins.api.health_check.kind: \"grpc\" is not http or tcp",
    ),
    (
        "health_check_http_no_path.toml",
        "origins.api.health_check.path: an http health check needs a path starting with '/'",
    ),
    (
        "cors_star_with_credentials.toml",
        "cors.credentials: cannot be true with origins = [\"*\"]: browsers refuse a \"*\" origin on requests with credentials, and allowing every origin to send them would let any site act as its visitors; list the origins instead",
    ),
    (
        "cors_route_credentials_inherit_star.toml",
        "routes[0].cors.credentials: cannot be true with origins = [\"*\"]: browsers refuse a \"*\" origin on requests with credentials, and allowing every origin to send them would let any site act as its visitors; list the origins instead",
    ),
    (
        "cors_origin_with_path.toml",
        "cors.origins: \"https://app.example.com/\" has a path: an origin is only scheme://host[:port], without a trailing '/'",
    ),
    (
        "cors_wildcard_not_first_label.toml",
        "cors.origins: \"https://*example.com\" is not an origin like https://app.example.com (a wildcard may only be the first label: https://*.example.com)",
    ),
    (
        "cors_route_unknown_mode.toml",
        "routes[0].cors: \"on\" is not \"inherit\", \"off\" or \"origin\" (or a table of [cors] fields)",
    ),
    (
        "cors_route_table_without_origins.toml",
        "routes[0].cors.origins: is required: there is no [cors] section to inherit the allowed origins from",
    ),
    (
        "cors_endpoint_left_to_origin.toml",
        "short_lived.cors: \"origin\" is for routes: tollgate answers this endpoint itself (use \"inherit\", \"off\" or a table)",
    ),
    (
        "cors_max_age_too_long.toml",
        "cors.max_age: must be at most 1d (browsers cap it lower: Chromium at 2h)",
    ),
    (
        "access_log_format_unknown.toml",
        "access_log.format: \"text\" is not a supported format (the only one is \"json\")",
    ),
    (
        "access_log_sample_out_of_range.toml",
        "access_log.sample: 10 is not between 0.0 and 1.0",
    ),
    (
        "access_log_directory_missing.toml",
        "access_log.path: directory \"/nonexistent/tollgate\" does not exist",
    ),
];

/// The fixture with several independent problems, and every one it must report.
const MANY_ERRORS: (&str, &[&str]) = (
    "many_errors.toml",
    &[
        "client_ip.ipv6_prefix: must be between 1 and 128",
        "keys.alphabet: \"base32\" is not base62 or base64url",
        "plans.free.rate: must be at least 1",
        "routes[0].access: \"private\" is not one of public, anonymous, key",
    ],
);

/// A 32-character admin token for the shipped configs.
const ADMIN_TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// The variables the shipped configs require: the admin token, and the
/// siteverify secret of `conf/mobiusquant.toml`'s trial verification.
const SHIPPED_ENV: &[(&str, &str)] = &[
    ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
    ("TOLLGATE_TURNSTILE_SECRET", "check-turnstile-secret"),
];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn bad_dir() -> PathBuf {
    repo_path("tests/fixtures/bad")
}

/// What `tollgate check --config <config>` reports (stdout line when valid,
/// stderr report when not), computed in process. As in [`check_process`], no
/// `TOLLGATE_*` variable of the caller's environment is seen, plus the given
/// ones; the process environment is only read, never changed.
fn check(config: &Path, env: &[(&str, &str)]) -> Result<String, String> {
    let lookup = |name: &str| match env.iter().find(|(n, _)| *n == name) {
        Some((_, value)) => Some((*value).to_string()),
        None if name.starts_with("TOLLGATE_") => None,
        None => std::env::var(name).ok(),
    };
    config::check(config, &lookup)
}

/// Runs the real `tollgate check --config <config>` with no `TOLLGATE_*`
/// variable (nor `RUST_LOG`) from the caller's environment, plus the given ones.
fn check_process(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.arg("check").arg("--config").arg(config);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TOLLGATE_") {
            cmd.env_remove(&name);
        }
    }
    cmd.env_remove("RUST_LOG");
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().expect("run tollgate check")
}

/// The `  - key: message` lines of a `check` failure.
fn issue_lines(report: &str) -> Vec<&str> {
    report.lines().filter(|l| l.starts_with("  - ")).collect()
}

/// Problems with one fixture's `check`; empty when it failed as expected.
fn bad_fixture_problems(file: &str, expected: &[&str]) -> Vec<String> {
    let path = bad_dir().join(file);
    let report = match check(&path, &[]) {
        Ok(summary) => return vec![format!("{file}: passed check: {summary}")],
        Err(report) => report,
    };
    let mut problems = Vec::new();
    for want in expected {
        if !report.contains(want) {
            problems.push(format!("report lacks {want:?}"));
        }
    }
    let invalid = format!("{} is invalid:", path.display());
    let syntax = format!("{} is not valid TOML:", path.display());
    if report.contains(&invalid) {
        let issues = issue_lines(&report);
        if issues.len() != expected.len() {
            problems.push(format!(
                "{} issues reported, want {}",
                issues.len(),
                expected.len()
            ));
        }
    } else if !report.contains(&syntax) {
        problems.push(format!("report has neither {invalid:?} nor {syntax:?}"));
    }
    problems
        .into_iter()
        .map(|p| format!("{file}: {p}\n--- report ---\n{report}"))
        .collect()
}

#[test]
fn bad_fixtures_are_rejected_with_their_issue() {
    let failures: Vec<String> = BAD
        .iter()
        .flat_map(|(file, want)| bad_fixture_problems(file, &[want]))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_bad_fixture_has_an_expectation() {
    let mut listed = BTreeSet::new();
    for name in BAD.iter().map(|(f, _)| *f).chain([MANY_ERRORS.0]) {
        assert!(listed.insert(name), "{name} is listed twice");
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(bad_dir())
        .expect("read tests/fixtures/bad")
        .map(|e| {
            e.expect("read fixture entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let unlisted: Vec<&String> = on_disk
        .iter()
        .filter(|f| !listed.contains(f.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "fixtures with no expected message in tests/config_check.rs: {unlisted:?}"
    );
    let missing: Vec<&&str> = listed.iter().filter(|f| !on_disk.contains(**f)).collect();
    assert!(
        missing.is_empty(),
        "listed fixtures that do not exist: {missing:?}"
    );
}

#[test]
fn check_reports_every_issue_not_just_the_first() {
    let (file, wants) = MANY_ERRORS;
    assert!(wants.len() >= 3);
    let failures = bad_fixture_problems(file, wants);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_configs_pass_check() {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(repo_path("conf"))
        .expect("read conf/")
        .map(|e| e.expect("read conf entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    configs.sort();
    assert!(!configs.is_empty(), "no *.toml in conf/");
    assert_eq!(ADMIN_TOKEN.len(), 32);
    for config in configs {
        match check(&config, SHIPPED_ENV) {
            Ok(summary) => assert!(summary.starts_with("ok:"), "{summary}"),
            Err(report) => panic!("{} failed check:\n{report}", config.display()),
        }
    }
}

#[test]
fn mobiusquant_without_a_turnstile_secret_fails_check() {
    let config = repo_path("conf/mobiusquant.toml");
    let report = check(&config, &[("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN)])
        .expect_err("check refuses mobiusquant.toml without a turnstile secret");
    let issues = issue_lines(&report);
    assert_eq!(issues.len(), 1, "{report}");
    assert!(
        issues[0].starts_with("  - trial.verification.secret: must be set:"),
        "{report}"
    );
}

/// The real binary prints exactly what [`config::check`] returns: a bad
/// fixture's report on stderr with exit status 1, a shipped profile's summary
/// on stdout with status 0.
#[test]
fn check_process_prints_the_in_process_result() {
    let bad = bad_dir().join(MANY_ERRORS.0);
    let report = check(&bad, &[]).expect_err("many_errors.toml fails check");
    let out = check_process(&bad, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr, format!("{report}\n"));

    let good = repo_path("conf/quickstart.toml");
    let summary = check(&good, SHIPPED_ENV).expect("quickstart.toml passes check");
    let out = check_process(&good, SHIPPED_ENV);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, format!("{summary}\n"));
    assert_eq!(stderr, "");
}
