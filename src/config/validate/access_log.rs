//! `[access_log]`: where the lines go, their format and the sampling rate.

use super::Issues;
use crate::config::model::{AccessLogSettings, AccessLogTarget};
use crate::config::schema::AccessLogSection;
use std::path::{Path, PathBuf};

/// The only format.
const FORMAT: &str = "json";

/// Where the lines go: `None` when off; a file's directory must exist.
fn target(is: &mut Issues, path: &str) -> Option<AccessLogTarget> {
    match path.trim() {
        "" => None,
        "-" | "stdout" => Some(AccessLogTarget::Stdout),
        file => {
            let file = PathBuf::from(file);
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if file.is_dir() {
                is.add("access_log.path", format!("{file:?} is a directory"));
            } else if !dir.is_dir() {
                is.add(
                    "access_log.path",
                    format!("directory {dir:?} does not exist"),
                );
            }
            Some(AccessLogTarget::File(file))
        }
    }
}

/// `[access_log]`: `None` when off. The format and the sampling rate are
/// checked whether or not it is on.
pub(super) fn compile_access_log(
    is: &mut Issues,
    a: &AccessLogSection,
) -> Option<AccessLogSettings> {
    if a.format != FORMAT {
        is.add(
            "access_log.format",
            format!(
                "{:?} is not a supported format (the only one is \"json\")",
                a.format
            ),
        );
    }
    if !(0.0..=1.0).contains(&a.sample) {
        is.add(
            "access_log.sample",
            format!("{} is not between 0.0 and 1.0", a.sample),
        );
    }
    let target = target(is, &a.path)?;
    Some(AccessLogSettings {
        target,
        sample: a.sample.clamp(0.0, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(path: &str, format: &str, sample: f64) -> (Option<AccessLogSettings>, Vec<String>) {
        let mut is = Issues::default();
        let section = AccessLogSection {
            path: path.into(),
            format: format.into(),
            sample,
        };
        let settings = compile_access_log(&mut is, &section);
        (settings, is.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn off_stdout_or_a_file() {
        assert!(compile("", "json", 1.0).0.is_none());
        for stdout in ["-", "stdout"] {
            let (s, issues) = compile(stdout, "json", 0.5);
            assert!(issues.is_empty(), "{issues:?}");
            let s = s.expect("on");
            assert_eq!(s.target, AccessLogTarget::Stdout);
            assert_eq!(s.sample, 0.5);
        }
        let dir = std::env::temp_dir();
        let file = dir.join("tollgate-access.log");
        let (s, issues) = compile(&file.display().to_string(), "json", 1.0);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(s.expect("on").target, AccessLogTarget::File(file));
        // A bare file name: the working directory.
        let (_, issues) = compile("access.log", "json", 1.0);
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn errors_name_the_key() {
        let (_, issues) = compile("", "text", 1.0);
        assert_eq!(
            issues,
            ["access_log.format: \"text\" is not a supported format (the only one is \"json\")"]
        );
        for bad in [-0.1, 1.01, f64::NAN] {
            let (_, issues) = compile("", "json", bad);
            assert_eq!(issues.len(), 1, "{bad}");
            assert!(issues[0].starts_with("access_log.sample: "), "{issues:?}");
        }
        let (_, issues) = compile("/nonexistent/tollgate/access.log", "json", 1.0);
        assert_eq!(
            issues,
            ["access_log.path: directory \"/nonexistent/tollgate\" does not exist"]
        );
        let dir = std::env::temp_dir().display().to_string();
        let (_, issues) = compile(&dir, "json", 1.0);
        assert_eq!(issues, [format!("access_log.path: {dir:?} is a directory")]);
    }
}
