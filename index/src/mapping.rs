//! The `fulltext` field mapping, from an index definition's `params`:
//!
//! ```json
//! {"mapping": {"default_analyzer": "en",
//!              "fields": {"title": {"type": "text"}, "tag": {"type": "keyword"},
//!                         "year": {"type": "i64"}, "price": {"type": "f64"},
//!                         "published": {"type": "date"}, "in_print": {"type": "bool"}}}}
//! ```
//!
//! Field options: `analyzer` (text only: `standard`, `en`, `raw`), `stored` and `indexed`
//! (default true). Without a mapping, the dynamic default indexes and stores the whole
//! document in one JSON field. Errors name the field, e.g. `params.mapping.fields.year.type`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::IndexError;

/// Analyzers a text field can use, and the tantivy tokenizer behind each.
pub const ANALYZERS: &[(&str, &str)] =
    &[("standard", "default"), ("en", "en_stem"), ("raw", "raw")];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// Analyzed text, with the tantivy tokenizer name.
    Text {
        tokenizer: String,
    },
    /// One exact term.
    Keyword,
    I64,
    F64,
    /// RFC 3339 timestamps.
    Date,
    Bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMapping {
    pub name: String,
    pub field_type: FieldType,
    pub stored: bool,
    pub indexed: bool,
}

/// A validated mapping; `fields` empty and `dynamic` set for the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub fields: Vec<FieldMapping>,
    pub dynamic: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingSpec {
    #[serde(default)]
    default_analyzer: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, FieldSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    #[serde(rename = "type")]
    field_type: String,
    #[serde(default)]
    analyzer: Option<String>,
    #[serde(default = "yes")]
    stored: bool,
    #[serde(default = "yes")]
    indexed: bool,
}

fn yes() -> bool {
    true
}

fn error(field: impl Into<String>, reason: impl Into<String>) -> IndexError {
    IndexError::Mapping {
        field: field.into(),
        reason: reason.into(),
    }
}

fn tokenizer(field: &str, analyzer: &str) -> Result<String, IndexError> {
    ANALYZERS
        .iter()
        .find(|(name, _)| *name == analyzer)
        .map(|(_, t)| t.to_string())
        .ok_or_else(|| {
            let known: Vec<&str> = ANALYZERS.iter().map(|(n, _)| *n).collect();
            error(
                field,
                format!(
                    "unknown analyzer `{analyzer}` (known: {})",
                    known.join(", ")
                ),
            )
        })
}

impl Mapping {
    /// The dynamic default: the whole document, indexed and stored.
    pub fn dynamic() -> Self {
        Self {
            fields: Vec::new(),
            dynamic: true,
        }
    }

    /// Reads `params.mapping`; `null` params or no `mapping` give the dynamic default.
    pub fn from_params(params: &serde_json::Value) -> Result<Self, IndexError> {
        let spec = match params {
            serde_json::Value::Null => return Ok(Self::dynamic()),
            serde_json::Value::Object(object) => match object.get("mapping") {
                None | Some(serde_json::Value::Null) => return Ok(Self::dynamic()),
                Some(spec) => spec,
            },
            _ => return Err(error("params", "must be an object")),
        };
        let spec: MappingSpec = serde_path_to_error::deserialize(spec).map_err(|e| {
            error(
                format!("params.mapping.{}", e.path()),
                e.inner().to_string(),
            )
        })?;
        let default_analyzer = spec.default_analyzer.as_deref().unwrap_or("standard");
        let default_tokenizer = tokenizer("params.mapping.default_analyzer", default_analyzer)?;
        if spec.fields.is_empty() {
            return Err(error(
                "params.mapping.fields",
                "at least one field is needed (or leave out the mapping for the dynamic default)",
            ));
        }
        let mut fields = Vec::new();
        for (name, f) in spec.fields {
            let at = |part: &str| format!("params.mapping.fields.{name}.{part}");
            if name.is_empty() || name.starts_with('_') || name.contains('.') {
                return Err(error(
                    format!("params.mapping.fields.{name}"),
                    "field names must not be empty, start with `_` or contain `.`",
                ));
            }
            let field_type = match f.field_type.as_str() {
                "text" => FieldType::Text {
                    tokenizer: match &f.analyzer {
                        Some(a) => tokenizer(&at("analyzer"), a)?,
                        None => default_tokenizer.clone(),
                    },
                },
                "keyword" => FieldType::Keyword,
                "i64" => FieldType::I64,
                "f64" => FieldType::F64,
                "date" => FieldType::Date,
                "bool" => FieldType::Bool,
                other => {
                    return Err(error(
                        at("type"),
                        format!(
                            "unknown type `{other}` (known: text, keyword, i64, f64, date, bool)"
                        ),
                    ))
                }
            };
            if f.analyzer.is_some() && !matches!(field_type, FieldType::Text { .. }) {
                return Err(error(at("analyzer"), "only text fields have an analyzer"));
            }
            fields.push(FieldMapping {
                name,
                field_type,
                stored: f.stored,
                indexed: f.indexed,
            });
        }
        Ok(Self {
            fields,
            dynamic: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_types_and_defaults() {
        let m = Mapping::from_params(&json!({"mapping": {"default_analyzer": "en", "fields": {
            "title": {"type": "text"}, "code": {"type": "text", "analyzer": "raw"}, "year": {"type": "i64", "stored": false}}}}))
        .unwrap();
        assert_eq!(m.fields.len(), 3);
        assert!(m.fields.iter().any(|f| f.name == "title"
            && f.field_type
                == FieldType::Text {
                    tokenizer: "en_stem".into()
                }));
        assert!(m.fields.iter().any(|f| f.name == "code"
            && f.field_type
                == FieldType::Text {
                    tokenizer: "raw".into()
                }));
        assert!(m.fields.iter().any(|f| f.name == "year" && !f.stored));
        assert!(
            Mapping::from_params(&serde_json::Value::Null)
                .unwrap()
                .dynamic
        );
        assert!(Mapping::from_params(&json!({})).unwrap().dynamic);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"mapping": {"fields": {"year": {"type": "int"}}}}),
                "params.mapping.fields.year.type",
            ),
            (
                json!({"mapping": {"fields": {"t": {"type": "text", "analyzer": "klingon"}}}}),
                "params.mapping.fields.t.analyzer",
            ),
            (
                json!({"mapping": {"fields": {"y": {"type": "i64", "analyzer": "en"}}}}),
                "params.mapping.fields.y.analyzer",
            ),
            (
                json!({"mapping": {"fields": {"t": {"type": "text", "boost": 2}}}}),
                "params.mapping.fields.t",
            ),
            (
                json!({"mapping": {"default_analyzer": "fr", "fields": {"t": {"type": "text"}}}}),
                "params.mapping.default_analyzer",
            ),
            (
                json!({"mapping": {"fields": {"_id": {"type": "text"}}}}),
                "params.mapping.fields._id",
            ),
            (json!({"mapping": {"fields": {}}}), "params.mapping.fields"),
            (json!([1]), "params"),
        ];
        for (params, field) in cases {
            match Mapping::from_params(&params) {
                Err(IndexError::Mapping { field: got, .. }) => assert!(
                    got.starts_with(field),
                    "{params}: named `{got}`, wanted `{field}`"
                ),
                other => panic!("{params}: expected a mapping error, got {other:?}"),
            }
        }
    }
}
