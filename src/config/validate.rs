//! Validation: turns the file schema into the internal model, collecting every
//! problem with the key it is about instead of stopping at the first.

use super::duration::parse_duration;
use super::model::*;
use super::schema::*;
use super::ConfigIssue;
use crate::auth::client_ip::ClientIpPolicy;
use crate::auth::credential::CredentialPolicy;
use crate::auth::keys::KeyHash;
use crate::auth::keys::{Alphabet, KeyFormat};
use crate::metering::credits::MAX_CREDITS;
use crate::metering::plan::{CreditPolicy, CreditPool};
use crate::metering::Plan;
use crate::reply::{ErrorKind, ErrorTemplate, ValidationTemplate};
use crate::routing::{Access, Pattern, Route, RouteTable, StoreFailure};
use http::{HeaderName, Method};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, text: &str) -> Duration {
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.add(key, "must be greater than zero");
                Duration::from_secs(1)
            }
            Ok(d) => d,
            Err(e) => {
                self.add(key, e);
                Duration::from_secs(1)
            }
        }
    }
}

/// Splits list entries that hold several comma-separated values (from env vars).
fn split_list(items: &[String]) -> Vec<String> {
    items
        .iter()
        .flat_map(|i| i.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn socket_addr(issues: &mut Issues, key: &str, text: &str) {
    if text.parse::<SocketAddr>().is_err() {
        issues.add(
            key,
            format!("{text:?} is not an address like 127.0.0.1:8080"),
        );
    }
}

fn host_port(issues: &mut Issues, key: &str, text: &str) {
    let ok = match text.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    };
    if !ok {
        issues.add(key, format!("{text:?} is not host:port"));
    }
}

/// Builds the model, or every issue found.
pub fn compile(file: FileConfig) -> Result<Config, Vec<ConfigIssue>> {
    let mut is = Issues::default();

    let listen = split_list(&file.server.listen);
    if listen.is_empty() {
        is.add("server.listen", "needs at least one address");
    }
    for l in &listen {
        socket_addr(&mut is, "server.listen", l);
    }
    if !(1..=256).contains(&file.server.threads) {
        is.add("server.threads", "must be between 1 and 256");
    }
    if file.server.max_header_bytes < 1024 {
        is.add("server.max_header_bytes", "must be at least 1024");
    }
    if file.server.max_body_bytes < 1024 {
        is.add("server.max_body_bytes", "must be at least 1024");
    }
    let server = ServerSettings {
        listen,
        threads: file.server.threads,
        max_header_bytes: file.server.max_header_bytes,
        max_body_bytes: file.server.max_body_bytes,
        shutdown_grace: parse_duration(&file.server.shutdown_grace).unwrap_or_else(|e| {
            is.add("server.shutdown_grace", e);
            Duration::from_secs(5)
        }),
        upstream_ca_file: match file.server.upstream_ca_file.trim() {
            "" => None,
            path => {
                ca_pem(&mut is, "server.upstream_ca_file", path);
                Some(path.to_string())
            }
        },
    };

    let admin = if file.admin.listen.trim().is_empty() {
        None
    } else {
        socket_addr(&mut is, "admin.listen", file.admin.listen.trim());
        let token = file.admin.token.trim().to_string();
        if !token.is_empty() && token.len() < 16 {
            is.add("admin.token", "must be at least 16 characters");
        }
        Some(AdminSettings {
            listen: file.admin.listen.trim().to_string(),
            token: (!token.is_empty()).then_some(token),
        })
    };
    let metrics_listen = match file.metrics.listen.trim() {
        "" => None,
        l => {
            socket_addr(&mut is, "metrics.listen", l);
            Some(l.to_string())
        }
    };

    let redis = compile_redis(&mut is, &file.store);
    let store = StoreSettings {
        redis: redis.clone(),
        usage_queue: file.store.usage_queue.unwrap_or(100_000),
        usage_flush: file
            .store
            .usage_flush
            .as_deref()
            .map(|t| is.duration("store.usage_flush", t))
            .unwrap_or(Duration::from_millis(50)),
    };
    if store.usage_queue == 0 {
        is.add("store.usage_queue", "must be at least 1");
    }

    let client_ip = compile_client_ip(&mut is, &file.client_ip);
    let credentials = CredentialPolicy {
        bearer: file.credentials.bearer,
        raw_authorization: file.credentials.raw_authorization,
        x_api_key: file.credentials.x_api_key,
        max_length: file.credentials.max_length,
        failure_limit: file.credentials.failure_limit,
    };
    if !(credentials.bearer || credentials.raw_authorization || credentials.x_api_key) {
        is.add(
            "credentials",
            "enable at least one of bearer, raw_authorization, x_api_key",
        );
    }
    if !(16..=8192).contains(&credentials.max_length) {
        is.add("credentials.max_length", "must be between 16 and 8192");
    }
    let keys = compile_keys(&mut is, &file.keys);
    let errors = compile_errors(&mut is, &file.errors);

    let mut plans = BTreeMap::new();
    for (name, p) in &file.plans {
        plans.insert(
            name.clone(),
            Arc::new(compile_plan(&mut is, &format!("plans.{name}"), name, p)),
        );
    }
    let find_plan = |is: &mut Issues, key: &str, name: &str| -> Option<Arc<Plan>> {
        let found = plans.get(name).cloned();
        if found.is_none() {
            is.add(
                key,
                format!(
                    "plan {name:?} is not defined (defined: {})",
                    plans.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        found
    };
    let anonymous_plan = file
        .anonymous
        .as_ref()
        .and_then(|a| find_plan(&mut is, "anonymous.plan", &a.plan));

    let mut origins = BTreeMap::new();
    for (name, o) in &file.origins {
        origins.insert(name.clone(), compile_origin(&mut is, name, o));
    }
    if origins.is_empty() {
        is.add("origins", "define at least one origin");
    }

    let mut routes = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in file.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if r.name.trim().is_empty() {
            is.add(format!("{key}.name"), "must not be empty");
        } else if !names.insert(r.name.clone()) {
            is.add(
                format!("{key}.name"),
                format!("route name {:?} is used twice", r.name),
            );
        }
        if r.paths.is_empty() {
            is.add(format!("{key}.paths"), "needs at least one path pattern");
        }
        let mut patterns = Vec::new();
        for (j, p) in r.paths.iter().enumerate() {
            match Pattern::parse(p) {
                Ok(pat) => patterns.push(pat),
                Err(e) => is.add(format!("{key}.paths[{j}]"), e),
            }
        }
        let mut methods = Vec::new();
        for (j, m) in r.methods.iter().enumerate() {
            match Method::from_bytes(m.as_bytes()) {
                Ok(method) if m.chars().all(|c| c.is_ascii_uppercase()) => methods.push(method),
                _ => is.add(
                    format!("{key}.methods[{j}]"),
                    format!("{m:?} is not an upper-case HTTP method"),
                ),
            }
        }
        let access = match r.access.as_str() {
            "public" => Access::Public,
            "anonymous" => Access::Anonymous,
            "key" => Access::Key,
            other => {
                is.add(
                    format!("{key}.access"),
                    format!("{other:?} is not one of public, anonymous, key"),
                );
                Access::Key
            }
        };
        if access == Access::Anonymous && anonymous_plan.is_none() && file.anonymous.is_none() {
            is.add(
                format!("{key}.access"),
                "an anonymous route needs an [anonymous] section with a plan",
            );
        }
        let on_store_failure = match r.on_store_failure.as_str() {
            "fail_closed" => StoreFailure::FailClosed,
            "fail_open" => StoreFailure::FailOpen,
            other => {
                is.add(
                    format!("{key}.on_store_failure"),
                    format!("{other:?} is not fail_open or fail_closed"),
                );
                StoreFailure::FailClosed
            }
        };
        if !origins.contains_key(&r.origin) {
            is.add(
                format!("{key}.origin"),
                format!("origin {:?} is not defined", r.origin),
            );
        }
        routes.push(Route {
            name: r.name.clone(),
            patterns,
            methods,
            access,
            origin: r.origin.clone(),
            cost: r.cost,
            plans: r.plans.clone(),
            on_store_failure,
            upgrade: r.upgrade,
        });
        for (j, plan) in r.plans.iter().enumerate() {
            if !file.plans.contains_key(plan) {
                is.add(
                    format!("{key}.plans[{j}]"),
                    format!("plan {plan:?} is not defined"),
                );
            }
        }
    }
    if routes.is_empty() {
        is.add("routes", "define at least one route");
    }
    let largest_budget = plans
        .values()
        .filter_map(|p| p.credits.as_ref().map(|c| c.budget))
        .max();
    if let Some(largest) = largest_budget {
        for (i, r) in routes.iter().enumerate() {
            if r.access != Access::Public && r.cost > largest {
                is.add(
                    format!("routes[{i}].cost"),
                    format!("{} is above every plan's credit budget (largest: {largest}); no call could ever be paid", r.cost),
                );
            }
        }
    }
    if let Some(plan) = &anonymous_plan {
        if plan.credits.is_some() {
            is.add(
                "anonymous.plan",
                format!(
                    "plan {:?} meters credits, but anonymous callers have no account to charge",
                    plan.name
                ),
            );
        }
    }

    let mut public_keys = HashMap::new();
    for (i, k) in file.keys.public.iter().enumerate() {
        let key = format!("keys.public[{i}]");
        if k.token.len() < 4 || !k.token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            is.add(
                format!("{key}.token"),
                "must be at least 4 visible ASCII characters",
            );
        }
        if k.account.is_empty()
            || k.account.len() > 64
            || !k
                .account
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            is.add(
                format!("{key}.account"),
                "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
            );
        }
        let Some(plan) = find_plan(&mut is, &format!("{key}.plan"), &k.plan) else {
            continue;
        };
        if public_keys.contains_key(&k.token) {
            is.add(format!("{key}.token"), "is declared twice");
        }
        let digest = KeyHash::of(&k.token).0;
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        public_keys.insert(
            k.token.clone(),
            PublicKey {
                id: uuid::Builder::from_random_bytes(bytes).into_uuid(),
                account: k.account.clone(),
                plan,
                name: k.name.clone(),
            },
        );
    }

    let self_service = file.self_service.as_ref().map(|s| {
        if !s.path.starts_with('/') || s.path.ends_with('/') || s.path.contains(['{', '*', '?']) {
            is.add(
                "self_service.path",
                "must be a literal path starting with '/' and not ending with '/'",
            );
        }
        if s.key_field.trim().is_empty() {
            is.add("self_service.key_field", "must not be empty");
        }
        SelfServiceSettings {
            path: s.path.clone(),
            envelope: (!s.envelope.is_empty()).then(|| s.envelope.clone()),
            key_field: s.key_field.clone(),
        }
    });
    let short_lived = file
        .short_lived
        .as_ref()
        .map(|s| compile_short_lived(&mut is, s, redis.is_some()));
    if file.query.limit_param.is_empty() {
        is.add("query.limit_param", "must not be empty");
    }
    let query = QueryPolicy {
        limit_param: file.query.limit_param.to_ascii_lowercase(),
        pagination_params: file
            .query
            .pagination_params
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect(),
    };

    let trial = file.trial.as_ref().and_then(|t| {
        if !t.path.starts_with('/') {
            is.add("trial.path", "must start with '/'");
        }
        let plan = find_plan(&mut is, "trial.plan", &t.plan);
        let ttl = is.duration("trial.ttl", &t.ttl);
        if ttl > Duration::from_secs(3650 * 86_400) {
            is.add("trial.ttl", "must be at most 3650d");
        }
        if t.issue_rate == Some(0) {
            is.add("trial.issue_rate", "must be at least 1 (omit it for no cap)");
        }
        let window = match &t.issue_window {
            Some(w) => is.duration("trial.issue_window", w),
            None => Duration::from_secs(3600),
        };
        if window > Duration::from_secs(366 * 86_400) {
            is.add("trial.issue_window", "must be at most 366d");
        }
        if t.issue_window.is_some() && t.issue_rate.is_none() {
            is.add(
                "trial.issue_window",
                "is set, but issue_rate is not: without issue_rate there is no cap (set both, or neither)",
            );
        }
        let choice = match &t.verification {
            Some(VerificationChoice::Siteverify(v)) => Some(v),
            Some(VerificationChoice::Off) => None,
            None => {
                is.add(
                    "trial.verification",
                    "is missing: trial keys would be issued without human verification; add a [trial.verification] table with a secret, or write verification = \"off\" under [trial] to issue them unverified",
                );
                None
            }
        };
        let verification = choice.map(|v| {
            if v.secret.trim().is_empty() {
                is.add(
                    "trial.verification.secret",
                    "must be set: without it trial keys would be issued without human verification; set the siteverify secret, or replace the [trial.verification] table with verification = \"off\" under [trial] to issue them unverified",
                );
            }
            if !(v.siteverify_url.starts_with("http://")
                || v.siteverify_url.starts_with("https://"))
            {
                is.add(
                    "trial.verification.siteverify_url",
                    "must be an http:// or https:// URL",
                );
            }
            if v.field.trim().is_empty() {
                is.add("trial.verification.field", "must not be empty");
            }
            VerificationSettings {
                siteverify_url: v.siteverify_url.clone(),
                secret: v.secret.clone(),
                field: v.field.clone(),
                timeout: is.duration("trial.verification.timeout", &v.timeout),
            }
        });
        Some(TrialSettings {
            path: t.path.clone(),
            plan: plan?,
            ttl,
            issuance: t.issue_rate.map(|rate| {
                Arc::new(Plan::simple("trial-issuance", rate.max(1), window, rate.max(1)))
            }),
            verification,
        })
    });

    if !is.0.is_empty() {
        return Err(is.0);
    }
    Ok(Config {
        server,
        admin,
        metrics_listen,
        store,
        client_ip,
        credentials,
        keys,
        errors,
        anonymous_plan,
        plans,
        origins,
        routes: RouteTable::new(routes),
        trial,
        public_keys,
        self_service,
        query,
        short_lived,
    })
}

fn compile_client_ip(is: &mut Issues, c: &ClientIpSection) -> ClientIpPolicy {
    let header = match c.header.trim() {
        "" => None,
        h => match HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => {
                is.add("client_ip.header", format!("{h:?} is not a header name"));
                None
            }
        },
    };
    let mut trusted = Vec::new();
    for entry in split_list(&c.trusted_proxies) {
        match entry.parse::<IpNet>() {
            Ok(net) => trusted.push(net),
            Err(_) => match entry.parse::<IpAddr>() {
                Ok(ip) => trusted.push(IpNet::from(ip)),
                Err(_) => is.add(
                    "client_ip.trusted_proxies",
                    format!("{entry:?} is not a CIDR like 10.0.0.0/8 or an IP"),
                ),
            },
        }
    }
    if !trusted.is_empty() && header.is_none() {
        is.add(
            "client_ip.header",
            "trusted_proxies is set but no header is named",
        );
    }
    if !(1..=128).contains(&c.ipv6_prefix) {
        is.add("client_ip.ipv6_prefix", "must be between 1 and 128");
    }
    ClientIpPolicy {
        header,
        trusted,
        ipv6_prefix: c.ipv6_prefix,
    }
}

fn compile_keys(is: &mut Issues, k: &KeysSection) -> KeyFormat {
    if k.prefix.is_empty()
        || !k
            .prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        is.add("keys.prefix", "must be non-empty letters, digits or '_'");
    }
    if !(16..=128).contains(&k.random_length) {
        is.add(
            "keys.random_length",
            "must be between 16 and 128 (at least 16 for enough entropy)",
        );
    }
    let alphabet = Alphabet::parse(&k.alphabet).unwrap_or_else(|| {
        is.add(
            "keys.alphabet",
            format!("{:?} is not base62 or base64url", k.alphabet),
        );
        Alphabet::Base62
    });
    if k.display_prefix == 0 || k.display_prefix > k.prefix.len() + k.random_length / 2 {
        is.add(
            "keys.display_prefix",
            "must be at least 1 and show at most half of the random part",
        );
    }
    KeyFormat {
        prefix: k.prefix.clone(),
        random_length: k.random_length,
        alphabet,
        display_prefix: k.display_prefix,
    }
}

/// A TOML table as JSON, or an issue at `key`.
fn json_table(is: &mut Issues, key: &str, v: Option<&toml::Value>) -> Option<serde_json::Value> {
    match v {
        None => None,
        Some(v @ toml::Value::Table(_)) => match serde_json::to_value(v) {
            Ok(json) => Some(json),
            Err(err) => {
                is.add(key, err.to_string());
                None
            }
        },
        Some(_) => {
            is.add(key, "must be a table, e.g. { detail = \"{message}\" }");
            None
        }
    }
}

fn compile_validation(is: &mut Issues, v: &ValidationSection) -> ValidationTemplate {
    if !(400..=499).contains(&v.status) {
        is.add(
            "errors.validation.status",
            format!("{} is not a 4xx status (e.g. 400 or 422)", v.status),
        );
    }
    if v.code.trim().is_empty() {
        is.add("errors.validation.code", "must not be empty");
    }
    let body = json_table(is, "errors.validation.template", v.template.as_ref());
    let item = match &v.item {
        None => ValidationTemplate::default_item(),
        Some(toml::Value::String(s)) => serde_json::Value::String(s.clone()),
        Some(t @ toml::Value::Table(_)) => json_table(is, "errors.validation.item", Some(t))
            .unwrap_or_else(ValidationTemplate::default_item),
        Some(_) => {
            is.add(
                "errors.validation.item",
                "must be a table or a string, e.g. { loc = \"{loc}\", msg = \"{msg}\", type = \"{type}\" }",
            );
            ValidationTemplate::default_item()
        }
    };
    ValidationTemplate {
        status: v.status,
        code: v.code.trim().to_string(),
        body,
        item,
    }
}

fn compile_errors(is: &mut Issues, e: &ErrorsSection) -> ErrorTemplate {
    let body = json_table(is, "errors.template", e.template.as_ref());
    let mut messages = BTreeMap::new();
    for (name, text) in &e.messages {
        match ErrorKind::from_name(name) {
            Some(kind) => {
                messages.insert(kind, text.clone());
            }
            None => is.add(
                format!("errors.messages.{name}"),
                format!(
                    "unknown error kind (known: {})",
                    ErrorKind::ALL.map(|k| k.name()).join(", ")
                ),
            ),
        }
    }
    let default = ErrorTemplate::default();
    let template = match body {
        Some(b) => ErrorTemplate::new(b, messages),
        None if messages.is_empty() => default,
        None => ErrorTemplate::new(
            serde_json::json!({"error": {"code": "{code}", "message": "{message}", "details": "{details}"}}),
            messages,
        ),
    };
    match &e.validation {
        Some(v) => template.with_validation(compile_validation(is, v)),
        None => template,
    }
}

fn compile_plan(is: &mut Issues, key: &str, name: &str, p: &PlanSection) -> Plan {
    if p.rate == 0 {
        is.add(format!("{key}.rate"), "must be at least 1");
    }
    let window = is.duration(&format!("{key}.window"), &p.window);
    let burst = p.burst.unwrap_or(p.rate);
    if burst == 0 {
        is.add(format!("{key}.burst"), "must be at least 1");
    }
    if window > Duration::from_secs(366 * 86_400) {
        is.add(format!("{key}.window"), "must be at most 366d");
    }
    // The bucket's capacity in µs (window / rate × burst) must stay far from i64's range.
    let capacity_us = window.as_micros() / u128::from(p.rate.max(1)) * u128::from(burst);
    if capacity_us > 10u128.pow(15) {
        is.add(
            format!("{key}.burst"),
            "window / rate × burst is too large (above about 30 years)",
        );
    }
    if p.max_active_keys == Some(0) {
        is.add(
            format!("{key}.max_active_keys"),
            "must be at least 1 (omit it for no cap)",
        );
    }
    let credits = p.credits.as_ref().map(|c| {
        if c.budget == 0 {
            is.add(format!("{key}.credits.budget"), "must be at least 1");
        }
        if c.budget > MAX_CREDITS {
            is.add(
                format!("{key}.credits.budget"),
                format!("{} is above the largest credit amount, {MAX_CREDITS} (10^15): balances beyond it lose precision in the Redis scripts", c.budget),
            );
        }
        let pool = match c.pool.as_str() {
            "account" => CreditPool::Account,
            "plan" => CreditPool::Plan,
            other => {
                is.add(format!("{key}.credits.pool"), format!("{other:?} is not account or plan"));
                CreditPool::Account
            }
        };
        if p.shared && pool == CreditPool::Account {
            is.add(
                format!("{key}.credits.pool"),
                "a shared plan pools its callers, so its credits cannot be per account: use pool = \"plan\"",
            );
        }
        if pool == CreditPool::Plan && !p.shared {
            is.add(
                format!("{key}.credits.pool"),
                "a pooled balance belongs to a shared plan (set shared = true), whose callers share one bucket too",
            );
        }
        if pool == CreditPool::Plan && c.refill.is_none() {
            is.add(
                format!("{key}.credits.refill"),
                "a pooled balance needs a refill period (nobody can top it up)",
            );
        }
        CreditPolicy {
            budget: c.budget,
            refill: c.refill.as_deref().map(|r| is.duration(&format!("{key}.credits.refill"), r)),
            pool,
        }
    });
    if p.max_results == Some(0) {
        is.add(
            format!("{key}.max_results"),
            "must be at least 1 (omit it for no cap)",
        );
    }
    Plan {
        name: name.to_string(),
        rate: p.rate.max(1),
        window,
        burst: burst.max(1),
        max_active_keys: p.max_active_keys,
        credits,
        max_results: p.max_results,
        pagination: p.pagination,
        key_management: p.key_management,
        custom_expiry: p.custom_expiry,
        shared: p.shared,
        short_lived_tokens: p.short_lived_tokens,
    }
}

fn compile_origin(is: &mut Issues, name: &str, o: &OriginSection) -> OriginSettings {
    let key = format!("origins.{name}");
    let servers = split_list(&o.servers);
    if servers.is_empty() {
        is.add(format!("{key}.servers"), "needs at least one host:port");
    }
    for s in &servers {
        host_port(is, &format!("{key}.servers"), s);
    }
    let health_check = o.health_check.as_ref().map(|h| {
        let interval = is.duration(&format!("{key}.health_check.interval"), &h.interval);
        match h.kind.as_str() {
            "tcp" => HealthCheck::Tcp { interval },
            "http" => {
                if !h.path.starts_with('/') {
                    is.add(
                        format!("{key}.health_check.path"),
                        "an http health check needs a path starting with '/'",
                    );
                }
                HealthCheck::Http {
                    path: h.path.clone(),
                    interval,
                }
            }
            other => {
                is.add(
                    format!("{key}.health_check.kind"),
                    format!("{other:?} is not http or tcp"),
                );
                HealthCheck::Tcp { interval }
            }
        }
    });
    let sni = if o.sni.is_empty() {
        servers
            .first()
            .and_then(|s| {
                s.rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
            })
            .unwrap_or_default()
    } else {
        o.sni.clone()
    };
    OriginSettings {
        name: name.to_string(),
        servers,
        tls: o.tls,
        sni,
        host_header: (!o.host_header.is_empty()).then(|| o.host_header.clone()),
        connect_timeout: is.duration(&format!("{key}.connect_timeout"), &o.connect_timeout),
        read_timeout: is.duration(&format!("{key}.read_timeout"), &o.read_timeout),
        health_check,
    }
}

fn compile_redis(is: &mut Issues, s: &StoreSection) -> Option<RedisSettings> {
    let urls = split_list(std::slice::from_ref(&s.redis_url));
    if urls.is_empty() {
        return None;
    }
    for u in &urls {
        if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
            is.add(
                "store.redis_url",
                format!("{:?} must start with redis:// or rediss://", redact(u)),
            );
        }
    }
    let timeout = s
        .redis_timeout
        .as_deref()
        .map(|t| is.duration("store.redis_timeout", t))
        .unwrap_or(Duration::from_millis(50));
    if timeout > Duration::from_secs(5) {
        is.add(
            "store.redis_timeout",
            "must be at most 5s: it bounds the request path",
        );
    }
    let breaker_failures = s.breaker_failures.unwrap_or(5);
    if breaker_failures == 0 {
        is.add("store.breaker_failures", "must be at least 1");
    }
    let ca_pem = match s.redis_ca_file.trim() {
        "" => None,
        path => {
            if let Some(plain) = urls.iter().find(|u| !u.starts_with("rediss://")) {
                is.add(
                    "store.redis_ca_file",
                    format!("is set, but {:?} is not a rediss:// URL", redact(plain)),
                );
            }
            ca_pem(is, "store.redis_ca_file", path)
        }
    };
    let mut dur = |key: &str, v: &Option<String>, default: Duration| {
        v.as_deref().map(|t| is.duration(key, t)).unwrap_or(default)
    };
    Some(RedisSettings {
        ca_pem,
        cluster: s.redis_cluster || urls.len() > 1,
        urls,
        timeout,
        breaker_failures: breaker_failures.max(1),
        breaker_cooldown: dur(
            "store.breaker_cooldown",
            &s.breaker_cooldown,
            Duration::from_secs(1),
        ),
        auth_cache_ttl: dur(
            "store.auth_cache_ttl",
            &s.auth_cache_ttl,
            Duration::from_secs(30),
        ),
        negative_cache_ttl: dur(
            "store.negative_cache_ttl",
            &s.negative_cache_ttl,
            Duration::from_secs(2),
        ),
    })
}

/// A URL with its password hidden, for error messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn compile_short_lived(
    is: &mut Issues,
    s: &ShortLivedSection,
    shared_store: bool,
) -> ShortLivedSettings {
    for (key, path) in [
        ("short_lived.tokens_path", &s.tokens_path),
        ("short_lived.inspect_path", &s.inspect_path),
    ] {
        if !path.starts_with('/') || path.ends_with('/') || path.contains(['{', '*', '?']) {
            is.add(
                key,
                "must be a literal path starting with '/' and not ending with '/'",
            );
        }
    }
    if s.tokens_path == s.inspect_path {
        is.add("short_lived.inspect_path", "must differ from tokens_path");
    }
    let mut secrets = Vec::new();
    let mut kids = BTreeSet::new();
    for (i, sec) in s.secrets.iter().enumerate() {
        if sec.kid.is_empty() || !kids.insert(sec.kid.clone()) {
            is.add(
                format!("short_lived.secrets[{i}].kid"),
                "must be non-empty and unique",
            );
        }
        if sec.secret.is_empty() {
            if shared_store && sec.kid == s.signing_kid {
                is.add(
                    format!("short_lived.secrets[{i}].secret"),
                    "is empty: with a shared store every instance must sign with the same secret (set TOLLGATE_JWT_SECRET)",
                );
            }
        } else if sec.secret.len() < 32 {
            is.add(
                format!("short_lived.secrets[{i}].secret"),
                "must be at least 32 bytes",
            );
        }
        secrets.push((sec.kid.clone(), sec.secret.clone()));
    }
    if !s.secrets.iter().any(|sec| sec.kid == s.signing_kid) {
        is.add(
            "short_lived.signing_kid",
            format!("{:?} is not one of the secrets' kids", s.signing_kid),
        );
    }
    let min = is.duration("short_lived.min_expires_in", &s.min_expires_in);
    let max = is.duration("short_lived.max_expires_in", &s.max_expires_in);
    if max > Duration::from_secs(30 * 86_400) {
        is.add(
            "short_lived.max_expires_in",
            "must be at most 30d: short-lived tokens are meant to be short",
        );
    }
    let default = is.duration("short_lived.default_expires_in", &s.default_expires_in);
    if !(min <= default && default <= max) {
        is.add(
            "short_lived.default_expires_in",
            "must lie between min_expires_in and max_expires_in",
        );
    }
    if s.max_count == 0 {
        is.add("short_lived.max_count", "must be at least 1");
    }
    if s.max_request_limit == 0 || !(1..=s.max_request_limit).contains(&s.default_request_limit) {
        is.add(
            "short_lived.default_request_limit",
            "must be between 1 and max_request_limit",
        );
    }
    if s.creation_rate == 0 {
        is.add("short_lived.creation_rate", "must be at least 1");
    }
    let window = is.duration("short_lived.creation_window", &s.creation_window);
    if window > Duration::from_secs(366 * 86_400) {
        is.add("short_lived.creation_window", "must be at most 366d");
    }
    ShortLivedSettings {
        tokens_path: s.tokens_path.clone(),
        inspect_path: s.inspect_path.clone(),
        issuer: s.issuer.clone(),
        signing_kid: s.signing_kid.clone(),
        secrets,
        min_expires_in: min,
        max_expires_in: max,
        default_expires_in: default,
        max_count: s.max_count,
        default_request_limit: s.default_request_limit,
        max_request_limit: s.max_request_limit,
        creation: Arc::new(Plan::simple(
            "token-creation",
            s.creation_rate.max(1),
            window,
            s.creation_rate.max(1),
        )),
        fields: [
            s.fields.create.clone(),
            s.fields.list.clone(),
            s.fields.inspect.clone(),
            s.fields.delete.clone(),
        ],
    }
}

/// Reads a PEM file of CA certificates: at least one, and nothing else (a key
/// in a combined bundle would make the TLS stack refuse the file at start).
fn ca_pem(is: &mut Issues, key: &str, path: &str) -> Option<Vec<u8>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            is.add(key, format!("cannot read {path:?}: {e}"));
            return None;
        }
    };
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .collect();
    if labels.is_empty() {
        is.add(key, format!("{path:?} holds no PEM certificate"));
        return None;
    }
    if let Some(other) = labels.iter().find(|l| **l != "CERTIFICATE") {
        is.add(
            key,
            format!("{path:?} holds a {other}, not only certificates"),
        );
        return None;
    }
    Some(text.into_bytes())
}
