//! Two-phase search over PIndexes scores exactly like one index holding every document, on a
//! corpus skewed across partitions (one partition holds most documents with the query terms).

use tessera_index::fulltext::FulltextPIndex;
use tessera_index::mapping::Mapping;
use tessera_index::{Change, PIndex, Searchable};
use tessera_search::dsl::QuerySpec;
use tessera_search::merge::{merge, Hit};
use tessera_search::stats::TermStats;
use tessera_search::{local, request};

const PINDEXES: u32 = 4;

fn mapping() -> Mapping {
    let params = serde_json::json!({"mapping": {"fields": {
        "title": {"type": "text", "analyzer": "en"},
        "body": {"type": "text"},
        "tag": {"type": "keyword"},
        "year": {"type": "i64"},
        "published": {"type": "date"}
    }}});
    Mapping::from_params(&params).expect("valid mapping")
}

const WORDS: &[&str] = &[
    "rust",
    "search",
    "index",
    "planner",
    "replica",
    "cluster",
    "query",
    "engine",
    "async",
    "storage",
    "partition",
    "node",
    "score",
    "term",
    "phrase",
    "shard",
    "fast",
    "safe",
];

/// Document `i`: partition 0 gets "rust"-heavy, longer documents; the others sparse ones.
fn doc(i: u32) -> (u32, String, serde_json::Value) {
    let partition = if i % 10 < 6 {
        0
    } else {
        1 + i % (PINDEXES - 1)
    };
    let mut rng = i.wrapping_mul(2_654_435_761);
    let mut words = |n: usize| -> String {
        (0..n)
            .map(|_| {
                rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                WORDS[(rng >> 16) as usize % WORDS.len()]
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (title, body) = if partition == 0 {
        (
            format!("rust {}", words(3)),
            format!("{} rust engine", words(20)),
        )
    } else {
        (words(2), words(6))
    };
    let value = serde_json::json!({
        "title": title, "body": body, "tag": WORDS[(i as usize) % 3],
        "year": 2000 + (i % 25), "published": format!("20{:02}-0{}-15T00:00:00Z", i % 25, 1 + i % 9),
    });
    (partition, format!("doc{i:05}"), value)
}

fn open(dir: &std::path::Path) -> FulltextPIndex {
    FulltextPIndex::open(dir, &mapping()).expect("open")
}

fn load(n: u32) -> (tempfile::TempDir, Vec<Searchable>, Searchable) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut parts: Vec<FulltextPIndex> = (0..PINDEXES)
        .map(|p| open(&tmp.path().join(format!("p{p}"))))
        .collect();
    let mut reference = open(&tmp.path().join("all"));
    for i in 0..n {
        let (partition, key, value) = doc(i);
        let bytes = serde_json::to_vec(&value).expect("json");
        let change = Change::Put {
            key: &key,
            doc: &bytes,
        };
        parts[partition as usize]
            .apply(partition, "u", u64::from(i) + 1, change)
            .expect("apply");
        reference
            .apply(partition, "u", u64::from(i) + 1, change)
            .expect("apply");
    }
    let mut handles = Vec::new();
    for p in &mut parts {
        p.commit().expect("commit");
        handles.push(p.searchable().expect("fulltext is searchable"));
    }
    reference.commit().expect("commit");
    let reference = reference.searchable().expect("searchable");
    (tmp, handles, reference)
}

fn two_phase(parts: &[Searchable], spec: &QuerySpec, size: usize) -> (u64, Vec<Hit>) {
    let mut stats = TermStats::default();
    for p in parts {
        stats.add(&local::stats(p, spec).expect("stats"));
    }
    let mut total = 0;
    let mut lists = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let hits = local::search(p, &format!("p{i}"), spec, &stats, size, None).expect("search");
        total += hits.total_hits;
        lists.push(hits.hits);
    }
    (total, merge(lists, 0, size))
}

fn reference(all: &Searchable, spec: &QuerySpec, size: usize) -> (u64, Vec<Hit>) {
    let stats = local::stats(all, spec).expect("stats");
    let hits = local::search(all, "all", spec, &stats, size, None).expect("search");
    (hits.total_hits, merge(vec![hits.hits], 0, size))
}

fn spec(query: &str) -> QuerySpec {
    request::parse(format!(r#"{{"query": {query}}}"#).as_bytes())
        .expect("valid request")
        .request
        .query
}

#[test]
fn scores_and_order_equal_one_index() {
    let (_tmp, parts, all) = load(3000);
    // Skew check: the PIndexes' own statistics differ a lot, so local scoring would not do.
    let rust = spec(r#"{"term": {"field": "title", "value": "rust"}}"#);
    let freqs: Vec<u64> = parts
        .iter()
        .map(|p| {
            *local::stats(p, &rust)
                .expect("stats")
                .doc_freqs
                .values()
                .next()
                .unwrap_or(&0)
        })
        .collect();
    assert!(
        freqs[0] > 10 * freqs[1].max(1),
        "corpus not skewed: {freqs:?}"
    );

    for query in [
        r#"{"term": {"field": "title", "value": "rust"}}"#,
        r#"{"match": {"field": "body", "query": "replica cluster storage"}}"#,
        r#"{"match": {"field": "body", "query": "replica cluster", "operator": "and"}}"#,
        r#"{"phrase": {"field": "body", "query": "rust engine"}}"#,
        r#"{"bool": {"must": [{"match": {"field": "body", "query": "query"}}], "should": [{"term": {"field": "tag", "value": "search"}}], "must_not": [{"range": {"field": "year", "lt": 2005}}]}}"#,
        r#"{"query_string": "title:planner +year:>2010 body:(fast safe)"}"#,
        r#"{"range": {"field": "published", "gte": "2010-01-01T00:00:00Z", "lt": "2015-01-01T00:00:00Z"}}"#,
    ] {
        let s = spec(query);
        let (total, hits) = two_phase(&parts, &s, 50);
        let (want_total, want) = reference(&all, &s, 50);
        assert_eq!(total, want_total, "total hits of {query}");
        assert!(
            !want.is_empty(),
            "{query} finds nothing; the test would prove nothing"
        );
        let got: Vec<(String, f32)> = hits.iter().map(|h| (h.id.clone(), h.score)).collect();
        let wanted: Vec<(String, f32)> = want.iter().map(|h| (h.id.clone(), h.score)).collect();
        assert_eq!(got, wanted, "hits of {query}");
    }
}

#[test]
fn stored_fields_come_back_typed() {
    let (_tmp, parts, _all) = load(50);
    let s = spec(r#"{"term": {"field": "_id", "value": "doc00007"}}"#);
    let (total, hits) = two_phase(&parts, &s, 10);
    assert_eq!(total, 1);
    let (_, _, original) = doc(7);
    let fields = hits[0].fields();
    assert_eq!(fields["year"], original["year"]);
    assert_eq!(fields["title"], original["title"]);
    assert_eq!(fields["published"], original["published"]);
}

/// A node answering for several PIndexes at once reads stored fields only for its own top
/// hits (and those tied with the last), and the page merged from nodes is the same as from
/// every PIndex's own top hits.
#[test]
fn a_node_answers_its_top_hits_across_its_pindexes() {
    let (_tmp, parts, _all) = load(400);
    for query in [
        r#"{"match": {"field": "body", "query": "rust engine"}}"#,
        r#"{"term": {"field": "tag", "value": "rust"}}"#,
    ] {
        let s = spec(query);
        let mut stats = TermStats::default();
        for p in &parts {
            stats.add(&local::stats(p, &s).expect("stats"));
        }
        let named: Vec<(String, Searchable)> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("p{i}"), p.clone()))
            .collect();
        // Two "nodes": p0 and p1 on one, p2 and p3 on the other.
        let mut total = 0;
        let mut lists = Vec::new();
        for node in named.chunks(2) {
            let (found, failed) = local::search_many(node, &s, &stats, 5, None);
            assert!(failed.is_empty(), "{query}");
            let last = found.hits.iter().map(|h| h.score).fold(f32::MAX, f32::min);
            let beyond_ties = found.hits.iter().filter(|h| h.score > last).count();
            assert!(beyond_ties < 5, "{query}: more than the window read");
            total += found.total_hits;
            lists.push(found.hits);
        }
        let (want_total, want) = two_phase(&parts, &s, 5);
        assert_eq!(total, want_total, "{query}");
        let page = merge(lists, 0, 5);
        let ids = |hits: &[Hit]| {
            hits.iter()
                .map(|h| (h.id.clone(), h.score))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&page), ids(&want), "{query}");
    }
}
