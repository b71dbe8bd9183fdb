//! How callers are recognised: `[client_ip]`, `[credentials]`, `[keys]` (the key
//! format) and `[[keys.public]]` (keys whose plaintext is public).

use super::plans::find_plan;
use super::{split_list, Issues};
use crate::auth::client_ip::ClientIpPolicy;
use crate::auth::credential::CredentialPolicy;
use crate::auth::keys::{Alphabet, KeyFormat, KeyHash};
use crate::config::model::PublicKey;
use crate::config::schema::{ClientIpSection, CredentialsSection, KeysSection, PublicKeySection};
use crate::metering::Plan;
use http::HeaderName;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// `[client_ip]`: the forwarding header, trusted proxies and IPv6 grouping.
pub(super) fn compile_client_ip(is: &mut Issues, c: &ClientIpSection) -> ClientIpPolicy {
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

/// `[credentials]`: the accepted credential forms and their limits.
pub(super) fn compile_credentials(is: &mut Issues, c: &CredentialsSection) -> CredentialPolicy {
    let credentials = CredentialPolicy {
        bearer: c.bearer,
        raw_authorization: c.raw_authorization,
        x_api_key: c.x_api_key,
        max_length: c.max_length,
        failure_limit: c.failure_limit,
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
    credentials
}

/// `[keys]`: the format of issued keys.
pub(super) fn compile_keys(is: &mut Issues, k: &KeysSection) -> KeyFormat {
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

/// `[[keys.public]]`: by plaintext; an entry whose plan is undefined is left out.
pub(super) fn compile_public_keys(
    is: &mut Issues,
    public: &[PublicKeySection],
    plans: &BTreeMap<String, Arc<Plan>>,
) -> HashMap<String, PublicKey> {
    let mut public_keys = HashMap::new();
    for (i, k) in public.iter().enumerate() {
        let key = format!("keys.public[{i}]");
        if k.token.len() < 4 || !k.token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            is.add(
                format!("{key}.token"),
                "must be at least 4 visible ASCII characters",
            );
        }
        if !is_account_name(&k.account) {
            is.add(
                format!("{key}.account"),
                "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
            );
        }
        let Some(plan) = find_plan(is, plans, &format!("{key}.plan"), &k.plan) else {
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
    public_keys
}

/// 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
fn is_account_name(account: &str) -> bool {
    !account.is_empty()
        && account.len() <= 64
        && account
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
