//! `${VAR}` / `${VAR:-default}` interpolation of string values in the config file.

use thiserror::Error;

/// An interpolation failure, reported with the key path by the caller.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${` without a closing `}`.
    #[error("unterminated `${{` in {0:?}")]
    Unterminated(String),
    /// `${}` or a variable name with characters outside `[A-Za-z0-9_]`.
    #[error("invalid variable name {0:?}")]
    BadName(String),
    /// `${VAR}` (no default) where VAR is not set.
    #[error("environment variable {0} is not set and has no default (write ${{{0}:-default}})")]
    Unset(String),
}

/// Replaces every `${VAR}` and `${VAR:-default}` in `input` using `lookup`.
///
/// `$$` is a literal `$`. With `:-`, an unset *or empty* variable takes the default,
/// as in POSIX shells.
pub fn interpolate(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let end = body_start
            .find('}')
            .ok_or_else(|| InterpolationError::Unterminated(input.to_string()))?;
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(InterpolationError::BadName(name.to_string()));
        }
        match (lookup(name), default) {
            (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(InterpolationError::Unset(name.to_string())),
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_defaults() {
        assert_eq!(interpolate("a ${SET} b", &env), Ok("a value b".into()));
        assert_eq!(interpolate("${UNSET:-x:1}", &env), Ok("x:1".into()));
        assert_eq!(interpolate("${EMPTY:-d}", &env), Ok("d".into()));
        assert_eq!(interpolate("${EMPTY}", &env), Ok(String::new()));
        assert_eq!(interpolate("$$ and $x", &env), Ok("$ and $x".into()));
    }

    #[test]
    fn reports_errors() {
        assert_eq!(
            interpolate("${UNSET}", &env),
            Err(InterpolationError::Unset("UNSET".into()))
        );
        assert!(matches!(
            interpolate("${SET", &env),
            Err(InterpolationError::Unterminated(_))
        ));
        assert!(matches!(
            interpolate("${A-B}", &env),
            Err(InterpolationError::BadName(_))
        ));
    }
}
