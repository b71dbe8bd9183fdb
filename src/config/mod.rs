//! Configuration: the TOML file schema, `${VAR}` interpolation, validation that
//! collects every error with its key path, and the compiled internal model.

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
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string(), &|name| {
        std::env::var(name).ok()
    })
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
