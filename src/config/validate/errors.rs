//! `[errors]`: the error body template, per-kind messages and the validation
//! (422-style) template.

use super::Issues;
use crate::config::schema::{ErrorsSection, ValidationSection};
use crate::reply::{ErrorKind, ErrorTemplate, ValidationTemplate};
use std::collections::BTreeMap;

/// A TOML table as JSON, or an issue at `key`.
fn json_table(is: &mut Issues, key: &str, v: Option<&toml::Value>) -> Option<serde_json::Value> {
    match v {
        None => None,
        Some(v @ toml::Value::Table(_)) => match serde_json::to_value(v) {
            Ok(json) => Some(json),
            Err(err) => {
                is.add(key, err.to_string());
                None
            }
        },
        Some(_) => {
            is.add(key, "must be a table, e.g. { detail = \"{message}\" }");
            None
        }
    }
}

fn compile_validation(is: &mut Issues, v: &ValidationSection) -> ValidationTemplate {
    if !(400..=499).contains(&v.status) {
        is.add(
            "errors.validation.status",
            format!("{} is not a 4xx status (e.g. 400 or 422)", v.status),
        );
    }
    if v.code.trim().is_empty() {
        is.add("errors.validation.code", "must not be empty");
    }
    let body = json_table(is, "errors.validation.template", v.template.as_ref());
    let item = match &v.item {
        None => ValidationTemplate::default_item(),
        Some(toml::Value::String(s)) => serde_json::Value::String(s.clone()),
        Some(t @ toml::Value::Table(_)) => json_table(is, "errors.validation.item", Some(t))
            .unwrap_or_else(ValidationTemplate::default_item),
        Some(_) => {
            is.add(
                "errors.validation.item",
                "must be a table or a string, e.g. { loc = \"{loc}\", msg = \"{msg}\", type = \"{type}\" }",
            );
            ValidationTemplate::default_item()
        }
    };
    ValidationTemplate {
        status: v.status,
        code: v.code.trim().to_string(),
        body,
        item,
    }
}

/// `[errors]`: the template every reply tollgate writes itself is rendered with.
pub(super) fn compile_errors(is: &mut Issues, e: &ErrorsSection) -> ErrorTemplate {
    let body = json_table(is, "errors.template", e.template.as_ref());
    let mut messages = BTreeMap::new();
    for (name, text) in &e.messages {
        match ErrorKind::from_name(name) {
            Some(kind) => {
                messages.insert(kind, text.clone());
            }
            None => is.add(
                format!("errors.messages.{name}"),
                format!(
                    "unknown error kind (known: {})",
                    ErrorKind::ALL.map(|k| k.name()).join(", ")
                ),
            ),
        }
    }
    let default = ErrorTemplate::default();
    let template = match body {
        Some(b) => ErrorTemplate::new(b, messages),
        None if messages.is_empty() => default,
        None => ErrorTemplate::new(
            serde_json::json!({"error": {"code": "{code}", "message": "{message}", "details": "{details}"}}),
            messages,
        ),
    };
    match &e.validation {
        Some(v) => template.with_validation(compile_validation(is, v)),
        None => template,
    }
}
