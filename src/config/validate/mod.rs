//! Validation: turns the file schema into the internal model, collecting every
//! problem with the key it is about instead of stopping at the first.
//!
//! One function per section, called by [`compile`] in the order the issues are
//! reported: server, admin, metrics, store, client IP, credentials, keys,
//! errors, plans, anonymous plan, origins, CORS, routes, public keys,
//! self-service, short-lived tokens, query, trial, access log.

mod access_log;
mod callers;
mod compression;
mod cors;
mod errors;
mod origins;
mod plans;
mod routes;
mod self_service;
mod server;
mod short_lived;
mod store;
mod tls;
mod trial;

use super::duration::parse_duration;
use super::model::*;
use super::schema::*;
use super::ConfigIssue;
use crate::routing::RouteTable;
use std::net::SocketAddr;
use std::time::Duration;

pub use store::redact;

/// The issues found so far, each with its key path, in the order found.
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

/// Whether a management path is literal: starts with '/', does not end with
/// one, and holds no pattern characters.
fn is_literal_path(path: &str) -> bool {
    path.starts_with('/') && !path.ends_with('/') && !path.contains(['{', '*', '?'])
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

/// Builds the model, or every issue found.
pub fn compile(file: FileConfig) -> Result<Config, Vec<ConfigIssue>> {
    let mut is = Issues::default();
    let server = server::compile_server(&mut is, &file.server);
    let admin = server::compile_admin(&mut is, &file.admin);
    let metrics_listen = server::compile_metrics(&mut is, &file.metrics);
    let store = store::compile_store(&mut is, &file.store);
    let client_ip = callers::compile_client_ip(&mut is, &file.client_ip);
    let credentials = callers::compile_credentials(&mut is, &file.credentials);
    let keys = callers::compile_keys(&mut is, &file.keys);
    let errors = errors::compile_errors(&mut is, &file.errors);
    let plans = plans::compile_plans(&mut is, &file.plans);
    let anonymous_plan = file
        .anonymous
        .as_ref()
        .and_then(|a| plans::find_plan(&mut is, &plans, "anonymous.plan", &a.plan));
    let origins = origins::compile_origins(&mut is, &file.origins);
    let has_anonymous = anonymous_plan.is_some() || file.anonymous.is_some();
    let mut cors = cors::compile_cors(&mut is, &file);
    let routes = routes::compile_routes(
        &mut is,
        &file.routes,
        &plans,
        &origins,
        has_anonymous,
        &cors.global,
    );
    cors.enabled |= routes.iter().any(|r| r.cors.is_on());
    plans::check_anonymous_plan(&mut is, anonymous_plan.as_deref());
    let public_keys = callers::compile_public_keys(&mut is, &file.keys.public, &plans);
    let self_service = file
        .self_service
        .as_ref()
        .map(|s| self_service::compile_self_service(&mut is, s));
    let short_lived = file
        .short_lived
        .as_ref()
        .map(|s| short_lived::compile_short_lived(&mut is, s, store.redis.is_some()));
    let query = plans::compile_query(&mut is, &file.query);
    let trial = file
        .trial
        .as_ref()
        .and_then(|t| trial::compile_trial(&mut is, t, &plans));
    let access_log = access_log::compile_access_log(&mut is, &file.access_log);
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
        cors,
        access_log,
    })
}
