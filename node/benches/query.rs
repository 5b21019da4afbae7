//! Query latency and throughput: a 16-PIndex index over three `tessera` nodes (real etcd, a
//! standalone source) against one tantivy index holding the same documents, in the same run.
//! Prints p50/p99 per query kind (term, phrase, bool) for both, and queries per second at
//! saturation through one node. Run: `cargo bench -p tessera-node --bench query`.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use support::{post, HttpClient, Proc};
use tantivy::collector::{Count, TopDocs};
use tantivy::TantivyDocument;
use tessera_index::fulltext::FulltextPIndex;
use tessera_index::mapping::Mapping;
use tessera_index::{Change, PIndex};
use tessera_search::dsl::{QuerySpec, Target};
use tessera_tests::etcd::EtcdCluster;

const DOCS: usize = 100_000;
const SAMPLES: usize = 300;
const CONCURRENCY: usize = 16;
const SATURATION: Duration = Duration::from_secs(5);
/// Writes followed by an `at_plus` query for them.
const READ_YOUR_WRITE: usize = 100;
const MAPPING: &str =
    r#"{"fields": {"title": {"type": "text"}, "body": {"type": "text"}, "n": {"type": "i64"}}}"#;

/// A Zipf-ish vocabulary: word `w17` is more common than `w1700`.
fn words(state: &mut u64, n: usize) -> String {
    (0..n)
        .map(|_| {
            *state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = ((*state >> 11) as f64) / ((1u64 << 53) as f64);
            format!("w{}", (2000f64.powf(u)) as u32)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn doc(i: usize) -> (String, serde_json::Value) {
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let value =
        serde_json::json!({"title": words(&mut state, 6), "body": words(&mut state, 40), "n": i});
    (format!("d{i:06}"), value)
}

const QUERIES: &[(&str, &str)] = &[
    ("term", r#"{"term": {"field": "body", "value": "w40"}}"#),
    (
        "phrase",
        r#"{"phrase": {"field": "body", "query": "w2 w3"}}"#,
    ),
    (
        "bool",
        r#"{"bool": {"must": [{"match": {"field": "body", "query": "w5"}}], "should": [{"match": {"field": "title", "query": "w12 w30"}}], "must_not": [{"range": {"field": "n", "lt": 10000}}]}}"#,
    ),
];

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("bench");
    let (source, _source) = support::start_source(scratch.path());
    let (nodes, _procs): (Vec<String>, Vec<Proc>) = (0..3)
        .map(|i| support::start_node(scratch.path(), &cfg, i, &[]))
        .unzip();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client: HttpClient = support::client();
    let base = format!("http://{}", nodes[0]);

    // The index and its documents.
    let definition = format!(
        r#"{{"type": "fulltext", "source": {{"type": "tessera", "name": "docs", "partitions": 64, "params": {{"url": "http://{source}"}}}},
            "plan": {{"index_partitions": 16, "replicas": 0}}, "params": {{"mapping": {MAPPING}}}}}"#
    );
    runtime.block_on(async {
        let request = hyper::Request::put(format!("{base}/api/index/docs"))
            .body(Full::new(Bytes::from(definition)))
            .expect("request");
        let status = client.request(request).await.expect("answer").status();
        assert!(status.is_success(), "creating the index: {status}");
        for chunk in (0..DOCS).collect::<Vec<_>>().chunks(20_000) {
            let body: String = chunk
                .iter()
                .map(|i| {
                    let (key, value) = doc(*i);
                    format!("{}\n", serde_json::json!({"key": key, "doc": value}))
                })
                .collect();
            let (status, answer) = post(&client, &format!("http://{source}/api/source/docs/bulk"), body).await;
            assert_eq!(status, 200, "{answer}");
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let body = r#"{"query": {"match_all": {}}, "size": 0, "consistency": {"level": "at_plus"}, "timeout_ms": 60000}"#;
            let (status, answer) = post(&client, &format!("{base}/api/index/docs/query"), body.into()).await;
            if status == 200 && answer["total_hits"].as_u64() == Some(DOCS as u64) {
                break;
            }
            assert!(Instant::now() < deadline, "documents never all searchable: {answer}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // One tantivy index with the same documents, mapping and analyzers.
    let params = serde_json::json!({"mapping": serde_json::from_str::<serde_json::Value>(MAPPING).expect("mapping")});
    let mapping = Mapping::from_params(&params).expect("mapping");
    let mut single = FulltextPIndex::open(&scratch.path().join("single"), &mapping).expect("open");
    for i in 0..DOCS {
        let (key, value) = doc(i);
        let bytes = serde_json::to_vec(&value).expect("json");
        single
            .apply(
                0,
                "u",
                i as u64 + 1,
                Change::Put {
                    key: &key,
                    doc: &bytes,
                },
            )
            .expect("apply");
    }
    single.commit().expect("commit");
    let searchable = single.searchable().expect("searchable");
    let target = Target::for_index(searchable.index(), &mapping);

    println!(
        "query latency, {DOCS} docs, top 10 with stored fields, {SAMPLES} sequential queries each"
    );
    println!(
        "{:<8} {:>14} {:>14} {:>16} {:>16} {:>10} {:>10}",
        "query",
        "cluster p50",
        "cluster p99",
        "one index p50",
        "one index p99",
        "p50 ratio",
        "hits"
    );
    for (kind, query) in QUERIES {
        let body = format!(r#"{{"query": {query}, "size": 10}}"#);
        let spec: QuerySpec = serde_json::from_str(query).expect("query");
        let built = target.build(&spec, "query").expect("builds");
        let mut cluster = Vec::new();
        let mut single_times = Vec::new();
        let mut hits = (0, 0);
        for _ in 0..SAMPLES {
            let started = Instant::now();
            let (status, answer) = runtime.block_on(post(
                &client,
                &format!("{base}/api/index/docs/query"),
                body.clone(),
            ));
            cluster.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{answer}");
            hits.0 = answer["total_hits"].as_u64().unwrap_or(0);
            let started = Instant::now();
            let searcher = searchable.searcher();
            let (count, top) = searcher
                .search(
                    built.as_ref(),
                    &(Count, TopDocs::with_limit(10).order_by_score()),
                )
                .expect("search");
            for (_, address) in top {
                let _doc: TantivyDocument = searcher.doc(address).expect("doc");
            }
            single_times.push(started.elapsed().as_secs_f64() * 1000.0);
            hits.1 = count as u64;
        }
        assert_eq!(
            hits.0, hits.1,
            "{kind}: the cluster and one index disagree on the total"
        );
        let (c50, c99) = percentiles(cluster);
        let (s50, s99) = percentiles(single_times);
        println!(
            "{kind:<8} {c50:>11.2} ms {c99:>11.2} ms {s50:>13.2} ms {s99:>13.2} ms {:>9.1}× {:>10}",
            c50 / s50,
            hits.0
        );
    }

    // Saturation: CONCURRENCY clients sending term queries to one node for SATURATION.
    let (done, refused) = runtime.block_on(async {
        let body = format!(r#"{{"query": {}, "size": 10}}"#, QUERIES[0].1);
        let until = Instant::now() + SATURATION;
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let (client, url, body) = (
                    client.clone(),
                    format!("{base}/api/index/docs/query"),
                    body.clone(),
                );
                tokio::spawn(async move {
                    let (mut ok, mut refused) = (0u64, 0u64);
                    while Instant::now() < until {
                        match post(&client, &url, body.clone()).await.0 {
                            200 => ok += 1,
                            429 => refused += 1,
                            other => panic!("query answered {other}"),
                        }
                    }
                    (ok, refused)
                })
            })
            .collect();
        let mut totals = (0, 0);
        for task in tasks {
            let (ok, refused) = task.await.expect("client task");
            totals.0 += ok;
            totals.1 += refused;
        }
        totals
    });
    println!(
        "saturation: {CONCURRENCY} concurrent clients, term query via one node: {:.0} queries/s ({refused} answered 429; target 3000, {:.2}× of it)",
        done as f64 / SATURATION.as_secs_f64(),
        done as f64 / SATURATION.as_secs_f64() / 3000.0
    );

    // Read-your-write: one document written to the source, then an `at_plus` query (waiting
    // for what the source has now) that must find it.
    let mut times = Vec::new();
    for i in 0..READ_YOUR_WRITE {
        let key = format!("ryw{i}");
        let word = format!("fresh{i}x");
        let started = Instant::now();
        let line = serde_json::json!({"key": key, "doc": {"title": word, "body": "", "n": i}});
        let (status, answer) = runtime.block_on(post(
            &client,
            &format!("http://{source}/api/source/docs/bulk"),
            format!("{line}\n"),
        ));
        assert_eq!(status, 200, "{answer}");
        let query = format!(
            r#"{{"query": {{"term": {{"field": "title", "value": "{word}"}}}}, "size": 1, "consistency": {{"level": "at_plus"}}, "timeout_ms": 10000}}"#
        );
        let (status, answer) = runtime.block_on(post(
            &client,
            &format!("{base}/api/index/docs/query"),
            query,
        ));
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["total_hits"], 1,
            "the write is not visible: {answer}"
        );
    }
    let (p50, p99) = percentiles(times);
    println!(
        "read-your-write (write one document, at_plus term query for it), {READ_YOUR_WRITE} times: p50 {p50:.1} ms, p99 {p99:.1} ms"
    );
}
