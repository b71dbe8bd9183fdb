//! Who metered state belongs to, and which bucket of theirs a call takes from.
//!
//! Both are a persisted format: their text is part of every Redis key
//! (`tg:{<owner>}:b:<bucket>`, the owner being the Cluster hash tag) and of the
//! memory store's maps. [`Owner`] and [`Bucket`] are the only place that text
//! is written; the tests below pin it so existing Redis data stays valid.

use std::fmt;
use uuid::Uuid;

/// Who owns metered state: the Cluster hash tag and the credit balance's holder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// An account (`a:<id>`): its keys' buckets, its credits, its short-lived tokens.
    Account(String),
    /// A shared plan (`p:<name>`): one bucket and one credit pool for every caller.
    Plan(String),
    /// A key with no account, such as a trial key (`k:<key id>`).
    Key(Uuid),
    /// An anonymous client (`ip:<address or IPv6 prefix>`).
    Client(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Account(id) => write!(f, "a:{id}"),
            Owner::Plan(name) => write!(f, "p:{name}"),
            Owner::Key(id) => write!(f, "k:{id}"),
            Owner::Client(addr) => write!(f, "ip:{addr}"),
        }
    }
}

/// Which of an owner's token buckets a call takes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// An anonymous client's bucket (`ip`).
    Client,
    /// A shared plan's one bucket (`shared`).
    Shared,
    /// The bucket of a key that is its own owner (`key`).
    OwnKey,
    /// One of an account's keys (`key:<key id>`).
    AccountKey(Uuid),
    /// Short-lived token creation by one static key (`mint:<key id>`).
    Minting(Uuid),
    /// Trial issuance per client (`trial`).
    TrialIssuance,
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bucket::Client => f.write_str("ip"),
            Bucket::Shared => f.write_str("shared"),
            Bucket::OwnKey => f.write_str("key"),
            Bucket::AccountKey(id) => write!(f, "key:{id}"),
            Bucket::Minting(id) => write!(f, "mint:{id}"),
            Bucket::TrialIssuance => f.write_str("trial"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_persisted_text_is_pinned() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(Owner::Account("acme".into()).to_string(), "a:acme");
        assert_eq!(Owner::Plan("demo".into()).to_string(), "p:demo");
        assert_eq!(
            Owner::Key(id).to_string(),
            "k:01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(Owner::Client("1.2.3.4".into()).to_string(), "ip:1.2.3.4");
        assert_eq!(
            Owner::Client("2001:db8::/64".into()).to_string(),
            "ip:2001:db8::/64"
        );
        assert_eq!(Bucket::Client.to_string(), "ip");
        assert_eq!(Bucket::Shared.to_string(), "shared");
        assert_eq!(Bucket::OwnKey.to_string(), "key");
        assert_eq!(
            Bucket::AccountKey(id).to_string(),
            "key:01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(
            Bucket::Minting(id).to_string(),
            "mint:01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(Bucket::TrialIssuance.to_string(), "trial");
    }
}
