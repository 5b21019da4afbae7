//! The edit-list file: `{"edits": [...]}` in JSON, or the same in YAML (a `.yaml`/`.yml`
//! file). Each kind of repair has its own edit type; unknown fields are refused by name.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::RepairError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditList<E> {
    pub edits: Vec<E>,
}

impl<E: DeserializeOwned> EditList<E> {
    /// Reads an edit list from `path`.
    pub fn read(path: &std::path::Path) -> Result<Self, RepairError> {
        let text = std::fs::read_to_string(path)
            .map_err(RepairError::io(format!("reading {}", path.display())))?;
        let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        Self::parse(&text, yaml)
            .map_err(|e| RepairError::Invalid(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str, yaml: bool) -> Result<Self, String> {
        let list: Self = if yaml {
            serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
        } else {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        };
        if list.edits.is_empty() {
            return Err("`edits` is empty: nothing to do".into());
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use tessera_source::log::repair::LogEdit;

    use super::*;

    #[test]
    fn json_and_yaml_say_the_same() {
        let json = r#"{"edits": [
            {"op": "delete", "source": "docs", "partition": 3, "from_seq": 17, "to_seq": 18},
            {"op": "append", "source": "docs", "partition": 3, "entries": [{"key": "k", "doc": {"a": 1}}]},
            {"op": "set_uuid", "source": "docs", "partition": 3}
        ]}"#;
        let yaml = "edits:\n  - {op: delete, source: docs, partition: 3, from_seq: 17, to_seq: 18}\n  - op: append\n    source: docs\n    partition: 3\n    entries:\n      - {key: k, doc: {a: 1}}\n  - {op: set_uuid, source: docs, partition: 3}\n";
        let a = EditList::<LogEdit>::parse(json, false).unwrap();
        let b = EditList::<LogEdit>::parse(yaml, true).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.edits.len(), 3);
    }

    #[test]
    fn unknown_fields_and_empty_lists_are_refused_by_name() {
        let e = EditList::<LogEdit>::parse(r#"{"edits": [{"op": "delete", "source": "d", "partition": 1, "from_seq": 1, "to_seq": 1, "why": "x"}]}"#, false)
            .unwrap_err();
        assert!(e.contains("why"), "{e}");
        let e = EditList::<LogEdit>::parse(r#"{"edits": []}"#, false).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e =
            EditList::<LogEdit>::parse(r#"{"edits": [{"op": "truncate"}]}"#, false).unwrap_err();
        assert!(e.contains("truncate"), "{e}");
    }
}
