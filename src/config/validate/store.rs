//! `[store]`: the usage queue, and the Redis connection and resilience settings.

use super::{ca_pem, split_list, Issues};
use crate::config::model::{RedisSettings, StoreSettings};
use crate::config::schema::StoreSection;
use std::time::Duration;

/// `[store]`: Redis (when a URL is set) and the usage queue.
pub(super) fn compile_store(is: &mut Issues, s: &StoreSection) -> StoreSettings {
    let store = StoreSettings {
        redis: compile_redis(is, s),
        usage_queue: s.usage_queue.unwrap_or(100_000),
        usage_flush: s
            .usage_flush
            .as_deref()
            .map(|t| is.duration("store.usage_flush", t))
            .unwrap_or(Duration::from_millis(50)),
    };
    if store.usage_queue == 0 {
        is.add("store.usage_queue", "must be at least 1");
    }
    store
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
