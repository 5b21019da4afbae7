//! One PIndex's part of a query: its statistics (phase one) and its top hits and count under
//! the index-wide statistics (phase two), with the stored fields of its hits.

use tantivy::collector::{Count, TopDocs};
use tantivy::query::Query;
use tantivy::{DocAddress, Searcher, TantivyDocument};
use tessera_index::fulltext::stored::stored_fields;
use tessera_index::Searchable;

use crate::dsl::{QuerySpec, Target};
use crate::merge::Hit;
use crate::stats::TermStats;
use crate::SearchError;

/// A PIndex's (or a node's PIndexes') answer to phase two.
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

/// Phase two for one PIndex: the top `window` hits and the count, scored with `stats`.
/// `fields` limits the stored fields returned (all when `None`).
pub fn search(
    searchable: &Searchable,
    pindex: &str,
    spec: &QuerySpec,
    stats: &TermStats,
    window: usize,
    fields: Option<&[String]>,
) -> Result<LocalHits, SearchError> {
    let one = [(pindex.to_string(), searchable.clone())];
    let (found, mut failed) = search_many(&one, spec, stats, window, fields);
    match failed.pop() {
        Some((_, e)) => Err(e),
        None => Ok(found),
    }
}

/// Phase two for several PIndexes of one node, as one answer: their counts summed and the
/// node's top `window` hits among all of theirs, with stored fields read only for those (a
/// node's PIndexes together cannot place more than `window` hits in the page, so reading the
/// documents of every PIndex's own top `window` would be wasted; hits tied with the last one
/// kept are kept too, so the final merge still breaks ties by id). A PIndex that fails is
/// named with its error; the others still answer.
pub fn search_many(
    pindexes: &[(String, Searchable)],
    spec: &QuerySpec,
    stats: &TermStats,
    window: usize,
    fields: Option<&[String]>,
) -> (LocalHits, Vec<(String, SearchError)>) {
    let mut found = LocalHits::default();
    let mut failed = Vec::new();
    // (score, which PIndex, where in it)
    let mut candidates: Vec<(f32, usize, DocAddress)> = Vec::new();
    let mut searchers = Vec::with_capacity(pindexes.len());
    for (i, (name, searchable)) in pindexes.iter().enumerate() {
        let searcher = searchable.searcher();
        match top(searchable, &searcher, spec, stats, window) {
            Ok((count, top)) => {
                found.total_hits += count;
                candidates.extend(top.into_iter().map(|(score, at)| (score, i, at)));
            }
            Err(e) => failed.push((name.clone(), e)),
        }
        searchers.push(searcher);
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    if let Some(&(last, _, _)) = candidates.get(window.saturating_sub(1)) {
        let keep = candidates.partition_point(|c| c.0 >= last);
        candidates.truncate(keep);
    }
    let mut broken = std::collections::BTreeSet::new();
    for (score, i, address) in candidates {
        if broken.contains(&i) {
            continue;
        }
        let searcher = &searchers[i];
        match searcher.doc::<TantivyDocument>(address) {
            Ok(doc) => {
                let (id, stored) = stored_fields(searcher.schema(), &doc, fields);
                found.hits.push(Hit {
                    id,
                    score,
                    fields_json: serde_json::Value::Object(stored).to_string(),
                    pindex: pindexes[i].0.clone(),
                });
            }
            Err(e) => {
                broken.insert(i);
                found.hits.retain(|h| h.pindex != pindexes[i].0);
                failed.push((pindexes[i].0.clone(), SearchError::engine(e)));
            }
        }
    }
    (found, failed)
}

/// One PIndex's count and top `window` (score, address) under `stats`.
fn top(
    searchable: &Searchable,
    searcher: &Searcher,
    spec: &QuerySpec,
    stats: &TermStats,
    window: usize,
) -> Result<(u64, Vec<(f32, DocAddress)>), SearchError> {
    let query = build(searchable, spec)?;
    if window == 0 {
        let total = searcher
            .search_with_statistics_provider(query.as_ref(), &Count, stats)
            .map_err(SearchError::engine)?;
        return Ok((total as u64, Vec::new()));
    }
    let collector = (Count, TopDocs::with_limit(window).order_by_score());
    let (total, top) = searcher
        .search_with_statistics_provider(query.as_ref(), &collector, stats)
        .map_err(SearchError::engine)?;
    Ok((total as u64, top))
}
