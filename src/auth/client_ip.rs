//! The client IP used to meter anonymous callers.
//!
//! The configured header (e.g. `CF-Connecting-IP`) is read only when the TCP
//! peer is inside a trusted-proxy CIDR; otherwise the socket peer is the client.
//! IPv4-mapped IPv6 counts as IPv4, and IPv6 callers are grouped by prefix.

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr};

/// How the client IP is found.
#[derive(Debug, Clone)]
pub struct ClientIpPolicy {
    pub header: Option<HeaderName>,
    pub trusted: Vec<IpNet>,
    pub ipv6_prefix: u8,
}

impl Default for ClientIpPolicy {
    fn default() -> Self {
        Self {
            header: None,
            trusted: Vec::new(),
            ipv6_prefix: 64,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl ClientIpPolicy {
    /// Whether `peer` may set the client-IP header.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// The client IP: the header's when the peer is trusted and the header holds one IP.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if let Some(name) = &self.header {
            if self.is_trusted(peer) {
                let mut values = headers.get_all(name).iter();
                if let (Some(v), None) = (values.next(), values.next()) {
                    if let Some(ip) = v
                        .to_str()
                        .ok()
                        .and_then(|s| s.trim().parse::<IpAddr>().ok())
                    {
                        return canonical(ip);
                    }
                }
            }
        }
        peer
    }

    /// The metering key for an IP: the address for IPv4, the prefix for IPv6.
    pub fn bucket_key(&self, ip: IpAddr) -> String {
        match canonical(ip) {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let prefix = u32::from(self.ipv6_prefix.min(128));
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                format!("{}/{}", Ipv6Addr::from(bits & mask), prefix)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn policy(trusted: &[&str]) -> ClientIpPolicy {
        ClientIpPolicy {
            header: Some(HeaderName::from_static("cf-connecting-ip")),
            trusted: trusted.iter().map(|t| t.parse().expect("cidr")).collect(),
            ipv6_prefix: 64,
        }
    }

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("cf-connecting-ip", HeaderValue::from_str(v).expect("value"));
        m
    }

    #[test]
    fn header_only_from_trusted_peers() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let p = policy(&["10.0.0.0/8"]);
        assert_eq!(p.client_ip(ip("10.1.2.3"), &h("1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(
            p.client_ip(ip("192.168.1.1"), &h("1.2.3.4")),
            ip("192.168.1.1")
        );
        assert_eq!(p.client_ip(ip("10.1.2.3"), &h("garbage")), ip("10.1.2.3"));
        assert_eq!(
            p.client_ip(ip("::ffff:10.1.2.3"), &h("::ffff:1.2.3.4")),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn ipv6_grouped_by_prefix() {
        let p = policy(&[]);
        let a = p.bucket_key("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        let b = p.bucket_key("2001:db8:1:2:bbbb::9".parse().expect("ip"));
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(
            p.bucket_key("::ffff:1.2.3.4".parse().expect("ip")),
            "1.2.3.4"
        );
    }
}
