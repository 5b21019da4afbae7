//! A document as a `fulltext` PIndex stores it: its key and its stored fields as JSON (the
//! dynamic mapping's whole-document field unfolded into its fields). Queries show hits this
//! way; a repair salvaging a source from its PIndexes reads every document this way.

use std::path::Path;

use tantivy::schema::{OwnedValue, Schema};
use tantivy::{Document, Index, TantivyDocument};

use super::{DOC_FIELD, ID_FIELD, PARTITION_FIELD};
use crate::IndexError;

/// The document's key and its stored fields (`wanted` ones, or all), one value per field, or
/// a list when a field has several.
pub fn stored_fields(
    schema: &Schema,
    doc: &TantivyDocument,
    wanted: Option<&[String]>,
) -> (String, serde_json::Map<String, serde_json::Value>) {
    let named = doc.to_named_doc(schema);
    let mut id = String::new();
    let mut out = serde_json::Map::new();
    let keep = |name: &str| wanted.is_none_or(|w| w.iter().any(|f| f == name));
    for (name, values) in named.0 {
        match name.as_str() {
            ID_FIELD => {
                if let Some(OwnedValue::Str(s)) = values.first() {
                    id = s.clone();
                }
            }
            PARTITION_FIELD => {}
            DOC_FIELD => {
                if let Some(OwnedValue::Object(entries)) = values.into_iter().next() {
                    for (key, value) in entries {
                        if keep(&key) {
                            out.insert(key, to_json(value));
                        }
                    }
                }
            }
            _ if keep(&name) => {
                let mut values: Vec<serde_json::Value> = values.into_iter().map(to_json).collect();
                let value = if values.len() == 1 {
                    values.remove(0)
                } else {
                    serde_json::Value::Array(values)
                };
                out.insert(name, value);
            }
            _ => {}
        }
    }
    (id, out)
}

fn to_json(value: OwnedValue) -> serde_json::Value {
    match value {
        OwnedValue::Date(date) => serde_json::Value::String(
            date.into_utc()
                .format(&tantivy::time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        ),
        other => serde_json::to_value(&other).unwrap_or(serde_json::Value::Null),
    }
}

/// How many live documents the PIndex in `dir` holds, if it opens and its segments read.
pub fn document_count(dir: &Path) -> Result<u64, IndexError> {
    let storage = |e: tantivy::TantivyError| IndexError::Storage(e.to_string());
    let index = Index::open_in_dir(dir).map_err(storage)?;
    Ok(index.reader().map_err(storage)?.searcher().num_docs())
}

/// Every live document of the PIndex in `dir` as (key, stored fields), in no set order.
pub fn stored_documents(dir: &Path) -> Result<Vec<(String, serde_json::Value)>, IndexError> {
    let storage = |e: tantivy::TantivyError| IndexError::Storage(e.to_string());
    let index = Index::open_in_dir(dir).map_err(storage)?;
    let schema = index.schema();
    let searcher = index.reader().map_err(storage)?.searcher();
    let mut out = Vec::new();
    for segment in searcher.segment_readers() {
        let store = segment
            .get_store_reader(1)
            .map_err(|e| IndexError::Storage(e.to_string()))?;
        for doc_id in segment.doc_ids_alive() {
            let doc: TantivyDocument = store.get(doc_id).map_err(storage)?;
            let (key, fields) = stored_fields(&schema, &doc, None);
            if !key.is_empty() {
                out.push((key, serde_json::Value::Object(fields)));
            }
        }
    }
    Ok(out)
}
