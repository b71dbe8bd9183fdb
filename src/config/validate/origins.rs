//! `[origins.NAME]`: servers, TLS and SNI, timeouts and health checks.

use super::{host_port, split_list, Issues};
use crate::config::model::{HealthCheck, OriginSettings};
use crate::config::schema::{HealthCheckSection, OriginSection};
use std::collections::BTreeMap;

/// Every `[origins.NAME]`, by name; at least one is required.
pub(super) fn compile_origins(
    is: &mut Issues,
    sections: &BTreeMap<String, OriginSection>,
) -> BTreeMap<String, OriginSettings> {
    let mut origins = BTreeMap::new();
    for (name, o) in sections {
        origins.insert(name.clone(), compile_origin(is, name, o));
    }
    if origins.is_empty() {
        is.add("origins", "define at least one origin");
    }
    origins
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
    let health_check = o
        .health_check
        .as_ref()
        .map(|h| compile_health_check(is, &key, h));
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

/// `[origins.NAME.health_check]` of the origin at `key`.
fn compile_health_check(is: &mut Issues, key: &str, h: &HealthCheckSection) -> HealthCheck {
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
}
