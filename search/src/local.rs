//! One PIndex's part of a query: its statistics (phase one) and its top hits and count under
//! the index-wide statistics (phase two), with the stored fields of its hits.

use tantivy::collector::{Count, TopDocs};
use tantivy::query::Query;
use tantivy::schema::{OwnedValue, Schema};
use tantivy::{Document, TantivyDocument};
use tessera_index::fulltext::{DOC_FIELD, ID_FIELD, PARTITION_FIELD};
use tessera_index::Searchable;

use crate::dsl::{QuerySpec, Target};
use crate::merge::Hit;
use crate::stats::TermStats;
use crate::SearchError;

/// A PIndex's answer to phase two.
#[derive(Debug, Clone, Default)]
pub struct LocalHits {
    pub total_hits: u64,
    pub hits: Vec<Hit>,
}

/// The query as this PIndex's tantivy query.
pub fn build(searchable: &Searchable, spec: &QuerySpec) -> Result<Box<dyn Query>, SearchError> {
    Target::for_index(searchable.index(), searchable.mapping()).build(spec, "query")
}

/// Phase one: the statistics of the query's terms in this PIndex.
pub fn stats(searchable: &Searchable, spec: &QuerySpec) -> Result<TermStats, SearchError> {
    let query = build(searchable, spec)?;
    TermStats::collect(&searchable.searcher(), query.as_ref())
}

/// Phase two: the top `window` hits and the count, scored with `stats`. `fields` limits the
/// stored fields returned (all when `None`).
pub fn search(
    searchable: &Searchable,
    pindex: &str,
    spec: &QuerySpec,
    stats: &TermStats,
    window: usize,
    fields: Option<&[String]>,
) -> Result<LocalHits, SearchError> {
    let query = build(searchable, spec)?;
    let searcher = searchable.searcher();
    let (total_hits, top) = if window == 0 {
        let total = searcher
            .search_with_statistics_provider(query.as_ref(), &Count, stats)
            .map_err(SearchError::engine)?;
        (total, Vec::new())
    } else {
        let collector = (Count, TopDocs::with_limit(window).order_by_score());
        searcher
            .search_with_statistics_provider(query.as_ref(), &collector, stats)
            .map_err(SearchError::engine)?
    };
    let schema = searcher.schema().clone();
    let mut hits = Vec::with_capacity(top.len());
    for (score, address) in top {
        let doc: TantivyDocument = searcher.doc(address).map_err(SearchError::engine)?;
        let (id, stored) = stored_fields(&schema, &doc, fields);
        hits.push(Hit {
            id,
            score,
            fields: stored,
            pindex: pindex.to_string(),
        });
    }
    Ok(LocalHits {
        total_hits: total_hits as u64,
        hits,
    })
}

/// The document's key and its stored fields as JSON (one value, or a list when a field has
/// several); the dynamic mapping's whole-document field is unfolded into its fields.
fn stored_fields(
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
