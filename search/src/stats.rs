//! Exact BM25 across PIndexes. BM25 weighs a term by its document frequency and each field's
//! average length, both statistics of the whole collection. Scored alone, a PIndex would use
//! its own (a term rare in one partition looks precious there), and scores from different
//! PIndexes would not compare. So a query runs in two phases: each PIndex reports the
//! statistics of the query's terms ([`TermStats::collect`]), the coordinator sums them
//! ([`TermStats::add`]), and each PIndex then scores with the sums ([`TermStats`] is a
//! tantivy `Bm25StatisticsProvider`). Scores then equal those of one index holding every
//! document.

use std::collections::{BTreeMap, BTreeSet};

use tantivy::query::{Bm25StatisticsProvider, Query};
use tantivy::schema::Field;
use tantivy::{Searcher, Term};

use crate::SearchError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermStats {
    /// Documents (tantivy counts deleted ones not yet merged away, as it does in one index).
    pub docs: u64,
    /// Field id → tokens in that field over all documents.
    pub field_tokens: BTreeMap<u32, u64>,
    /// Term (field id, value bytes) → documents containing it.
    pub doc_freqs: BTreeMap<(u32, Vec<u8>), u64>,
}

impl TermStats {
    /// The statistics of `query`'s terms in what `searcher` shows.
    pub fn collect(searcher: &Searcher, query: &dyn Query) -> Result<TermStats, SearchError> {
        let mut terms: BTreeSet<Term> = BTreeSet::new();
        query.query_terms(&mut |term, _| {
            terms.insert(term.clone());
        });
        let mut stats = TermStats {
            docs: Bm25StatisticsProvider::total_num_docs(searcher).map_err(SearchError::engine)?,
            ..TermStats::default()
        };
        let fields: BTreeSet<Field> = terms.iter().map(|t| t.field()).collect();
        for field in fields {
            let tokens = Bm25StatisticsProvider::total_num_tokens(searcher, field)
                .map_err(SearchError::engine)?;
            stats.field_tokens.insert(field.field_id(), tokens);
        }
        for term in terms {
            let freq = searcher.doc_freq(&term).map_err(SearchError::engine)?;
            stats.doc_freqs.insert(key(&term), freq);
        }
        Ok(stats)
    }

    /// Adds another PIndex's statistics.
    pub fn add(&mut self, other: &TermStats) {
        self.docs += other.docs;
        for (field, tokens) in &other.field_tokens {
            *self.field_tokens.entry(*field).or_default() += tokens;
        }
        for (term, freq) in &other.doc_freqs {
            *self.doc_freqs.entry(term.clone()).or_default() += freq;
        }
    }
}

fn key(term: &Term) -> (u32, Vec<u8>) {
    (
        term.field().field_id(),
        term.serialized_value_bytes().to_vec(),
    )
}

impl Bm25StatisticsProvider for TermStats {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        Ok(self
            .field_tokens
            .get(&field.field_id())
            .copied()
            .unwrap_or(0))
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.docs)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        // Every term a query scores with was collected; a missing one occurs nowhere.
        Ok(self
            .doc_freqs
            .get(&key(term))
            .copied()
            .unwrap_or(0)
            .min(self.docs))
    }
}
