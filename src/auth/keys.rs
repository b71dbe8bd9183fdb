//! Long-lived key format, generation and hashing. Keys are stored only as sha256.

use rand::{Rng, TryRngCore};
use sha2::{Digest, Sha256};
use std::fmt;

/// The characters a key's random part is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// `[A-Za-z0-9]`
    Base62,
    /// `[A-Za-z0-9_-]`
    Base64Url,
}

impl Alphabet {
    fn chars(self) -> &'static [u8] {
        match self {
            Alphabet::Base62 => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            Alphabet::Base64Url => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            }
        }
    }

    /// Whether `b` belongs to the alphabet.
    pub fn contains(self, b: u8) -> bool {
        match self {
            Alphabet::Base62 => b.is_ascii_alphanumeric(),
            Alphabet::Base64Url => b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
        }
    }

    /// Parses `base62` / `base64url`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "base62" => Some(Alphabet::Base62),
            "base64url" => Some(Alphabet::Base64Url),
            _ => None,
        }
    }
}

/// The format of long-lived keys: `<prefix><random>`.
#[derive(Debug, Clone)]
pub struct KeyFormat {
    pub prefix: String,
    pub random_length: usize,
    pub alphabet: Alphabet,
    /// How many leading characters form the displayed `keyPrefix`.
    pub display_prefix: usize,
}

impl Default for KeyFormat {
    fn default() -> Self {
        Self {
            prefix: "tg_".into(),
            random_length: 43,
            alphabet: Alphabet::Base62,
            display_prefix: 12,
        }
    }
}

impl KeyFormat {
    /// A new key from the operating system's CSPRNG.
    pub fn generate(&self) -> String {
        let chars = self.alphabet.chars();
        let mut rng = rand::rngs::OsRng.unwrap_err();
        let mut out = String::with_capacity(self.prefix.len() + self.random_length);
        out.push_str(&self.prefix);
        for _ in 0..self.random_length {
            out.push(chars[rng.random_range(0..chars.len())] as char);
        }
        out
    }

    /// Whether `token` has this format (prefix, length, alphabet).
    pub fn matches(&self, token: &str) -> bool {
        let Some(rest) = token.strip_prefix(&self.prefix) else {
            return false;
        };
        rest.len() == self.random_length && rest.bytes().all(|b| self.alphabet.contains(b))
    }

    /// The `keyPrefix` shown in listings and logs.
    pub fn display(&self, token: &str) -> String {
        token.chars().take(self.display_prefix).collect()
    }
}

/// sha256 of a key: the only form in which keys are stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Hashes a plaintext key.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses lower- or upper-case hex.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", &self.to_hex()[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_matching_keys() {
        let f = KeyFormat {
            prefix: "mq_".into(),
            random_length: 43,
            alphabet: Alphabet::Base64Url,
            display_prefix: 12,
        };
        let a = f.generate();
        let b = f.generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 46);
        assert!(f.matches(&a));
        assert!(!f.matches(&a[..45]));
        assert!(!f.matches(&format!("{a}x")));
        assert!(!f.matches(&a.replacen("mq_", "mx_", 1)));
        assert_eq!(f.display(&a).len(), 12);
        assert!(f.display(&a).starts_with("mq_"));
    }

    #[test]
    fn hashes_are_sha256() {
        let h = KeyHash::of("abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
    }
}
