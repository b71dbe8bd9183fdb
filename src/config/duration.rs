//! Human-friendly durations in config files: `500ms`, `2s`, `1m`, `1h`, `7d`.

use std::time::Duration;

/// Parses `<integer><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (use ms, s, m, h or d)"))?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m, h or d)"
            ))
        }
    }
    .ok_or_else(|| format!("{text:?} is too large"))?;
    Ok(Duration::from_millis(ms))
}

/// Formats a window the way rate-limit messages show it: `min`, `hour`, `day`, or seconds.
pub fn window_label(window: Duration) -> String {
    match window.as_secs() {
        1 => "s".into(),
        60 => "min".into(),
        3600 => "hour".into(),
        86_400 => "day".into(),
        s if s % 60 == 0 && s > 0 => format!("{}min", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("3w").is_err());
    }

    #[test]
    fn labels_windows() {
        assert_eq!(window_label(Duration::from_secs(60)), "min");
        assert_eq!(window_label(Duration::from_secs(3600)), "hour");
        assert_eq!(window_label(Duration::from_secs(120)), "2min");
    }
}
