//! The body of `POST /api/index/{name}/query`:
//!
//! ```json
//! {"query": {"query_string": "title:rust +year:>2020"}, "size": 10, "from": 0,
//!  "timeout_ms": 5000, "fields": ["title"], "allow_partial_results": false,
//!  "consistency": {"level": "at_plus", "vectors": {"17": 120}}}
//! ```
//!
//! Unknown fields are refused by name; `from + size` is capped at [`MAX_WINDOW`] with a
//! warning in the answer rather than an error, since a caller asking for "everything" still
//! wants the first page.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dsl::QuerySpec;
use crate::SearchError;

/// The deepest hit a query can reach (`from + size`).
pub const MAX_WINDOW: usize = 10_000;
pub const DEFAULT_SIZE: usize = 10;
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const MAX_TIMEOUT_MS: u64 = 600_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub query: QuerySpec,
    #[serde(default = "default_size")]
    pub size: usize,
    #[serde(default)]
    pub from: usize,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub consistency: Option<Consistency>,
    /// Stored fields to return; all stored fields when absent.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// With `true`, PIndexes that fail are reported in `status.errors` and the rest answered
    /// with 200; otherwise any failure fails the query.
    #[serde(default)]
    pub allow_partial_results: bool,
    /// Which copies to read: the primary when it can serve (`primary`, default), or any
    /// readable copy, spreading queries over replicas (`any`).
    #[serde(default)]
    pub prefer: Prefer,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefer {
    #[default]
    Primary,
    Any,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    pub level: Level,
    /// Source partition → the seq the answer must include. Without vectors, `at_plus` waits
    /// for the source's high seqs as of the query (read your own writes).
    #[serde(default)]
    pub vectors: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    NotBounded,
    AtPlus,
}

fn default_size() -> usize {
    DEFAULT_SIZE
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// A validated request and the warnings to put in the answer.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub request: QueryRequest,
    /// `at_plus` seqs by source partition (`None`: not bounded; empty map with
    /// `wait_for_source`: the source's highs).
    pub at_plus: Option<BTreeMap<u32, u64>>,
    pub wait_for_source: bool,
    pub warnings: Vec<String>,
}

/// Reads and validates a request body.
pub fn parse(body: &[u8]) -> Result<Parsed, SearchError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut request: QueryRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let position = (inner.line() > 0).then(|| inner.column());
        SearchError::BadQuery {
            field: if field == "." { "body".into() } else { field },
            message: inner.to_string(),
            position,
        }
    })?;
    let mut warnings = Vec::new();
    if request.from > MAX_WINDOW {
        return Err(SearchError::bad(
            "from",
            format!(
                "from {} is past the deepest hit a query can reach ({MAX_WINDOW})",
                request.from
            ),
        ));
    }
    // Checked: `size` is the caller's, and `usize::MAX` must not wrap past the cap.
    let Some(window) = request.from.checked_add(request.size) else {
        return Err(SearchError::bad(
            "size",
            format!(
                "from + size overflows; size {} is far past the deepest hit a query can reach ({MAX_WINDOW})",
                request.size
            ),
        ));
    };
    if window > MAX_WINDOW {
        let capped = MAX_WINDOW - request.from;
        warnings.push(format!(
            "size {} capped to {capped}: from + size may not exceed {MAX_WINDOW}",
            request.size
        ));
        request.size = capped;
    }
    if request.timeout_ms == 0 || request.timeout_ms > MAX_TIMEOUT_MS {
        return Err(SearchError::bad(
            "timeout_ms",
            format!("timeout_ms must be 1..={MAX_TIMEOUT_MS}"),
        ));
    }
    let (at_plus, wait_for_source) = match &request.consistency {
        None
        | Some(Consistency {
            level: Level::NotBounded,
            ..
        }) => (None, false),
        Some(Consistency {
            level: Level::AtPlus,
            vectors: None,
        }) => (Some(BTreeMap::new()), true),
        Some(Consistency {
            level: Level::AtPlus,
            vectors: Some(vectors),
        }) => {
            let mut seqs = BTreeMap::new();
            for (partition, seq) in vectors {
                let p = partition.parse::<u32>().map_err(|_| {
                    SearchError::bad(
                        format!("consistency.vectors.{partition}"),
                        "a vector key is a source partition number",
                    )
                })?;
                seqs.insert(p, *seq);
            }
            (Some(seqs), false)
        }
    };
    Ok(Parsed {
        request,
        at_plus,
        wait_for_source,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(body: &str) -> (String, String) {
        match parse(body.as_bytes()) {
            Err(SearchError::BadQuery { field, message, .. }) => (field, message),
            other => panic!("expected a bad query for {body}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_at_plus() {
        let p = parse(br#"{"query": {"match_all": {}}}"#).expect("valid");
        assert_eq!((p.request.size, p.request.from), (DEFAULT_SIZE, 0));
        assert!(p.at_plus.is_none());
        let p = parse(br#"{"query": {"match_all": {}}, "consistency": {"level": "at_plus"}}"#)
            .expect("valid");
        assert!(p.wait_for_source);
        let p = parse(
            br#"{"query": {"match_all": {}}, "consistency": {"level": "at_plus", "vectors": {"3": 9}}}"#,
        )
        .expect("valid");
        assert_eq!(p.at_plus, Some(BTreeMap::from([(3, 9)])));
    }

    #[test]
    fn huge_size_is_capped_with_a_warning() {
        let p =
            parse(br#"{"query": {"match_all": {}}, "size": 1000000, "from": 10}"#).expect("valid");
        assert_eq!(p.request.size, MAX_WINDOW - 10);
        assert!(p.warnings[0].contains("capped"), "{:?}", p.warnings);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(bad(r#"{"query": {"match_all": {}}, "sise": 3}"#).0, "sise");
        assert_eq!(bad(r#"{"query": {"mtch": {}}}"#).0, "query");
        assert_eq!(
            bad(r#"{"query": {"match": {"field": "a", "query": "b", "oops": 1}}}"#).0,
            "query.match.oops"
        );
        assert_eq!(
            bad(r#"{"query": {"match_all": {}}, "consistency": {"level": "at_plus", "vectors": {"x": 1}}}"#).0,
            "consistency.vectors.x"
        );
        assert_eq!(
            bad(r#"{"query": {"match_all": {}}, "timeout_ms": 0}"#).0,
            "timeout_ms"
        );
        assert_eq!(
            bad(r#"{"query": {"match_all": {}}, "from": 20000}"#).0,
            "from"
        );
        assert_eq!(
            bad(r#"{"query": {"match_all": {}}, "from": 5, "size": 18446744073709551615}"#).0,
            "size"
        );
        assert_eq!(bad(r#"{"query": "#).0, "query");
    }
}
