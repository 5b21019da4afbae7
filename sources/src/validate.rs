//! Checking a definition's source at index create, with errors naming the field, before any
//! node tries to read it.

use tessera_cfg::schema::{FieldError, SourceDef};

use crate::jetstream::JetStreamParams;

/// The source types a definition may name.
pub const SOURCE_TYPES: [&str; 2] = ["tessera", "jetstream"];

/// Whether `def` names a known source type with parameters it can be read with.
pub fn validate(def: &SourceDef) -> Result<(), FieldError> {
    match def.source_type.as_str() {
        "tessera" => reference(def),
        "jetstream" => JetStreamParams::of(def).map(|_| ()),
        other => Err(FieldError::new(
            "source.type",
            format!(
                "unknown source type `{other}` (known: {})",
                SOURCE_TYPES.join(", ")
            ),
        )),
    }
}

/// The reference source takes `url` (where a standalone source answers) and `node` (recorded
/// at create: whose embedded source), both strings.
fn reference(def: &SourceDef) -> Result<(), FieldError> {
    for (name, value) in &def.params {
        match (name.as_str(), value) {
            ("url", serde_json::Value::String(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(FieldError::new(
                        "source.params.url",
                        format!("`{url}` is not an http:// or https:// address"),
                    ));
                }
                if let Err(e) = crate::dial::Address::parse("source.params.url", url, 0) {
                    return Err(FieldError::new("source.params.url", e.to_string()));
                }
            }
            ("node", serde_json::Value::String(_)) => {}
            ("url" | "node", _) => {
                return Err(FieldError::new(
                    format!("source.params.{name}"),
                    "must be a string",
                ))
            }
            _ => {
                return Err(FieldError::new(
                    format!("source.params.{name}"),
                    "unknown parameter of source type `tessera` (known: url, node)",
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(source_type: &str, params: serde_json::Value) -> SourceDef {
        SourceDef {
            source_type: source_type.into(),
            name: "docs".into(),
            partitions: None,
            params: params.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn known_types_pass_and_unknown_ones_name_the_field() {
        assert!(validate(&def("tessera", serde_json::json!({}))).is_ok());
        assert!(validate(&def("tessera", serde_json::json!({"url": "http://h:1"}))).is_ok());
        let jetstream = serde_json::json!({"servers": ["nats://h:4222"], "stream": "DOCS",
            "subject_prefix": "docs", "partitions": 8});
        assert!(validate(&def("jetstream", jetstream)).is_ok());
        assert_eq!(
            validate(&def("kafka", serde_json::json!({})))
                .unwrap_err()
                .field,
            "source.type"
        );
        let bad_url = validate(&def("tessera", serde_json::json!({"url": "h:1"}))).unwrap_err();
        assert_eq!(bad_url.field, "source.params.url");
        let unknown = validate(&def("tessera", serde_json::json!({"stream": "x"}))).unwrap_err();
        assert_eq!(unknown.field, "source.params.stream");
    }
}
