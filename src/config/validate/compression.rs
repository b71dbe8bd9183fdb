//! `[server.compression]`: level, minimum size and media types.

use super::Issues;
use crate::config::model::CompressionSettings;
use crate::config::schema::CompressionSection;

/// Whether a media type is `type/subtype` or `type/*`, for a type Pingora's
/// encoders take (`text` or `application`).
fn valid_type(t: &str) -> bool {
    let Some((major, sub)) = t.split_once('/') else {
        return false;
    };
    matches!(major, "text" | "application")
        && !sub.is_empty()
        && sub
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.*_".contains(c))
        && (sub == "*" || !sub.contains('*'))
}

/// `[server.compression]`: `None` when disabled.
pub(super) fn compile_compression(
    is: &mut Issues,
    c: &CompressionSection,
) -> Option<CompressionSettings> {
    if !(1..=9).contains(&c.level) {
        is.add("server.compression.level", "must be between 1 and 9");
    }
    if c.types.is_empty() {
        is.add(
            "server.compression.types",
            "needs at least one media type (set enabled = false to turn compression off)",
        );
    }
    let mut types = Vec::new();
    for (i, t) in c.types.iter().enumerate() {
        let t = t.trim().to_ascii_lowercase();
        if valid_type(&t) {
            types.push(t);
        } else {
            is.add(
                format!("server.compression.types[{i}]"),
                format!(
                    "{t:?} is not a text/… or application/… media type (type/subtype or type/*)"
                ),
            );
        }
    }
    c.enabled.then_some(CompressionSettings {
        level: c.level,
        min_size: c.min_size,
        types,
    })
}

#[cfg(test)]
mod tests {
    use super::valid_type;

    #[test]
    fn media_types() {
        assert!(valid_type("application/json"));
        assert!(valid_type("application/problem+json"));
        assert!(valid_type("text/*"));
        assert!(!valid_type("image/png"));
        assert!(!valid_type("json"));
        assert!(!valid_type("text/"));
        assert!(!valid_type("application/*json"));
    }
}
