//! Configuration: the TOML file schema, `${VAR}` interpolation, validation that
//! collects every error with its key path, and the compiled internal model.

pub mod certificates;
pub mod duration;
pub mod env;
pub mod model;
pub mod schema;
mod validate;
pub use validate::redact as validate_redact;

pub use model::*;

use std::fmt;
use std::path::Path;
use thiserror::Error;

/// One problem in a config file, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `plans.free.rate` or `routes[2].origin`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{path} is invalid:\n{}", .issues.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        issues: Vec<ConfigIssue>,
    },
}

impl ConfigError {
    /// The issues, for tests and `check`.
    pub fn issues(&self) -> Vec<ConfigIssue> {
        match self {
            ConfigError::Invalid { issues, .. } => issues.clone(),
            other => vec![ConfigIssue {
                key: String::new(),
                message: other.to_string(),
            }],
        }
    }
}

/// Reads, interpolates from the process environment, and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &process_env)
}

/// The process environment as an interpolation lookup: what [`load`] uses.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads, interpolates with `env`, and validates a config file.
pub fn load_with(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string(), env)
}

/// What `tollgate check` reports for a config file read with `env`: the line
/// it prints on stdout when the file is valid, or the report it prints on
/// stderr (before exiting with status 1) when it is not.
pub fn check(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    match load_with(path, env) {
        Ok(c) => Ok(format!(
            "ok: {}: {} routes, {} plans, {} origins",
            path.display(),
            c.routes.routes().len(),
            c.plans.len(),
            c.origins.len()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses and validates config text with a given environment.
pub fn parse(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: origin.to_string(),
        message: e.to_string(),
    })?;
    let mut issues = Vec::new();
    interpolate_tree(&mut value, String::new(), env, &mut issues);
    if !issues.is_empty() {
        return Err(ConfigError::Invalid {
            path: origin.to_string(),
            issues,
        });
    }
    let file: schema::FileConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid {
            path: origin.to_string(),
            issues: vec![ConfigIssue {
                key: if key == "." { String::new() } else { key },
                message: e.inner().to_string(),
            }],
        }
    })?;
    validate::compile(file).map_err(|issues| ConfigError::Invalid {
        path: origin.to_string(),
        issues,
    })
}

fn interpolate_tree(
    value: &mut toml::Value,
    path: String,
    env: &dyn Fn(&str) -> Option<String>,
    issues: &mut Vec<ConfigIssue>,
) {
    match value {
        toml::Value::String(s) => match env::interpolate(s, env) {
            Ok(v) => *s = v,
            Err(e) => issues.push(ConfigIssue {
                key: path,
                message: e.to_string(),
            }),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, format!("{path}[{i}]"), env, issues);
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                interpolate_tree(v, p, env, issues);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[plans.free]
rate = 10

[origins.api]
servers = ["127.0.0.1:8000"]

[[routes]]
name = "api"
paths = ["/api/*"]
access = "key"
origin = "api"

[trial]
path = "/trial"
plan = "free"
"#;

    fn trial(extra: &str) -> Result<TrialSettings, Vec<ConfigIssue>> {
        let text = format!("{BASE}{extra}");
        parse(&text, "test.toml", &|_| None)
            .map(|c| c.trial.expect("trial"))
            .map_err(|e| e.issues())
    }

    #[test]
    fn trial_verification_is_a_table_or_off() {
        let off = trial("verification = \"off\"\n").expect("off");
        assert!(off.verification.is_none());
        let on = trial(
            "[trial.verification]\nsiteverify_url = \"https://v.example/siteverify\"\nsecret = \"s3cret\"\n",
        )
        .expect("table");
        assert_eq!(on.verification.map(|v| v.secret), Some("s3cret".into()));
        // Neither, or a table without its secret: an error naming the key.
        let keys = |r: Result<TrialSettings, Vec<ConfigIssue>>| {
            r.expect_err("refused")
                .into_iter()
                .map(|i| i.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(trial("")), ["trial.verification"]);
        assert_eq!(
            keys(trial(
                "[trial.verification]\nsiteverify_url = \"https://v.example/siteverify\"\n"
            )),
            ["trial.verification.secret"]
        );
        assert_eq!(
            keys(trial("verification = \"none\"\n")),
            ["trial.verification"]
        );
        assert_eq!(
            keys(trial("verification = false\n")),
            ["trial.verification"]
        );
        // Unknown keys inside the table are still refused, with their path.
        assert_eq!(
            keys(trial(
                "[trial.verification]\nsiteverify_url = \"https://v.example/s\"\nsecret = \"s\"\nsecrte = \"x\"\n"
            )),
            ["trial.verification.secrte"]
        );
    }

    #[test]
    fn trial_issuance_cap_is_optional() {
        let uncapped = trial("verification = \"off\"\n").expect("uncapped");
        assert!(uncapped.issuance.is_none());
        let capped = trial("issue_rate = 3\nissue_window = \"10m\"\nverification = \"off\"\n")
            .expect("capped");
        let cap = capped.issuance.expect("cap");
        assert_eq!((cap.rate, cap.burst), (3, 3));
        assert_eq!(cap.window, std::time::Duration::from_secs(600));
    }
}
