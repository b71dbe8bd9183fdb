//! `[self_service]`: the account-facing key management endpoint.

use super::{is_literal_path, Issues};
use crate::config::model::SelfServiceSettings;
use crate::config::schema::SelfServiceSection;

/// `[self_service]`: a literal path, an optional envelope and the key field.
pub(super) fn compile_self_service(is: &mut Issues, s: &SelfServiceSection) -> SelfServiceSettings {
    if !is_literal_path(&s.path) {
        is.add(
            "self_service.path",
            "must be a literal path starting with '/' and not ending with '/'",
        );
    }
    if s.key_field.trim().is_empty() {
        is.add("self_service.key_field", "must not be empty");
    }
    SelfServiceSettings {
        path: s.path.clone(),
        envelope: (!s.envelope.is_empty()).then(|| s.envelope.clone()),
        key_field: s.key_field.clone(),
    }
}
