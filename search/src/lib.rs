//! The pure parts of scatter-gather search, apart from the node's I/O (see README.md):
//!
//! - [`request`]: the query request (`POST /api/index/{name}/query`), validated with errors
//!   naming the field;
//! - [`dsl`]: the query forms (`match`, `term`, `phrase`, `range`, `bool`, `query_string`,
//!   `match_all`) and how each becomes a tantivy query against a mapping;
//! - [`stats`]: the term statistics of a query, summed over PIndexes, so every PIndex scores
//!   with the statistics of the whole index (exact BM25);
//! - [`local`]: one PIndex's top hits and count under given statistics;
//! - [`merge`]: the global top hits from each PIndex's top hits;
//! - [`route`]: which copy of each PIndex to ask, and what to ask instead when one fails.

pub mod dsl;
pub mod local;
pub mod merge;
pub mod request;
pub mod route;
pub mod stats;

/// Why a query cannot run. `BadQuery` is the caller's fault (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("`{field}`: {message}")]
    BadQuery {
        /// Where in the request, e.g. `query.bool.must[1].match.field`.
        field: String,
        message: String,
        /// For `query_string`: the byte offset of the error in the string.
        position: Option<usize>,
    },
    #[error("search failed: {0}")]
    Engine(String),
}

impl SearchError {
    pub(crate) fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        SearchError::BadQuery {
            field: field.into(),
            message: message.into(),
            position: None,
        }
    }

    pub(crate) fn engine(e: impl std::fmt::Display) -> Self {
        SearchError::Engine(e.to_string())
    }
}
