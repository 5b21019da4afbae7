//! The global top hits from each PIndex's top hits: every PIndex scored with the same
//! statistics, so scores compare across PIndexes; ties go to the smaller id so that pages are
//! stable from one query to the next.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    /// Stored fields, as the JSON object text the PIndex's node wrote: parsed only for the
    /// hits of the page answered ([`Hit::fields`]).
    pub fields_json: String,
    /// The PIndex it came from.
    pub pindex: String,
}

impl Hit {
    /// The stored fields (an empty object if the text is not one).
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.fields_json).unwrap_or_default()
    }
}

/// Hits `from..from + size` of the union of `lists` by descending score.
pub fn merge(lists: Vec<Vec<Hit>>, from: usize, size: usize) -> Vec<Hit> {
    let mut all: Vec<Hit> = lists.into_iter().flatten().collect();
    all.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    all.into_iter().skip(from).take(size).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32) -> Hit {
        Hit {
            id: id.into(),
            score,
            fields_json: "{}".into(),
            pindex: "p".into(),
        }
    }

    #[test]
    fn pages_through_the_union_by_score_then_id() {
        let a = vec![hit("a", 3.0), hit("c", 1.0)];
        let b = vec![hit("b", 2.0), hit("d", 1.0), hit("e", 0.5)];
        let ids = |hits: Vec<Hit>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(
            ids(merge(vec![a.clone(), b.clone()], 0, 3)),
            ["a", "b", "c"]
        );
        assert_eq!(ids(merge(vec![a.clone(), b.clone()], 3, 10)), ["d", "e"]);
        assert!(merge(vec![a, b], 10, 10).is_empty());
    }
}
