//! The web console in a real browser (Debian's chromium through chromedriver): the console of
//! a three-node cluster shows every node and every copy; a drain started from the page runs
//! and the map follows it until the node holds nothing; a query run from the page shows its
//! hits and how many PIndexes answered. Screenshots of each step are saved under
//! `target/artifacts/console/`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::webdriver::Browser;
use common::{cluster_node, free_port, http, wait_for, Proc};
use serde_json::{json, Value};
use tessera_tests::etcd::EtcdCluster;

const DOCS: usize = 300;

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("artifacts/console")
}

/// What the map shows: per node row, its copies count and the copy squares drawn.
fn map_rows(browser: &Browser) -> BTreeMap<String, (u64, u64)> {
    let rows = browser.script(
        "return [...document.querySelectorAll('#map-table tr[data-node]')].map(r => \
         [r.dataset.node, Number(r.dataset.copies), r.querySelectorAll('.copy[data-pindex]').length]);",
        json!([]),
    );
    rows.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r[0].as_str()?.to_string(), (r[1].as_u64()?, r[2].as_u64()?))))
        .collect()
}

/// Draws the map of 100 nodes and `arguments[0]` PIndexes of 20 indexes with 2 copies each;
/// returns what was drawn and how long it took.
const SCALE_SCRIPT: &str = r##"
const pindexes = arguments[0];
const nodes = [];
for (let i = 0; i < 100; i++) {
  nodes.push({uuid: `node${String(i).padStart(3, "0")}`, host_port: `10.0.0.${i}:9100`, group: `zone-${i % 10}`,
    state: "wanted", live: true, wanted: true, failed_over: false, copies: 0, primaries: 0});
}
const plans = [];
for (let x = 0; x < 20; x++) {
  const list = [];
  for (let p = 0; p < pindexes / 20; p++) {
    const n = (x * 7 + p) % 100;
    list.push({name: `ix${x}_${p}`, source_partitions: [p], copies: [
      {node: nodes[n].uuid, role: "primary", state: "active", can_read: true},
      {node: nodes[(n + 50) % 100].uuid, role: "replica", state: p % 10 ? "active" : "building", can_read: true}]});
  }
  plans.push({index: `ix${x}`, pindexes: list});
}
state.topology = {nodes};
state.plans = plans;
state.tasks = [];
const started = performance.now();
renderMap();
const ms = performance.now() - started;
return {ms, rows: document.querySelectorAll("#map-table tr[data-node]").length,
  groups: document.querySelectorAll("#map-table tr.group-row").length,
  squares: document.querySelectorAll("#map-table .copy[data-pindex]").length,
  summaries: document.querySelectorAll("#map-table span.ix:not(:has(.copy))").length};
"##;

#[test]
fn the_console_shows_the_cluster_drains_a_node_and_runs_a_query() {
    let etcd = EtcdCluster::single();
    let cfg = etcd.cfg_spec("console");
    let scratch = tempfile::tempdir().unwrap();
    let addresses: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let _nodes: Vec<Proc> = (0..3)
        .map(|i| {
            let dir = scratch.path().join(format!("node{i}"));
            cluster_node(&cfg, &dir, &addresses[i], &format!("zone-{i}"))
        })
        .collect();
    let a = &addresses[0];
    let uuids: Vec<String> = addresses
        .iter()
        .map(|address| {
            let (_, ping) = http(address, "GET", "/api/ping", "");
            ping["node"].as_str().expect("a node uuid").to_string()
        })
        .collect();
    wait_for("three nodes registered", Duration::from_secs(30), || {
        let (_, body) = http(a, "GET", "/api/nodes", "");
        (body["nodes"].as_array()?.len() == 3).then_some(())
    });
    let index = r#"{"type": "fulltext", "source": {"type": "tessera", "name": "books", "partitions": 1024},
        "plan": {"max_partitions_per_pindex": 128, "replicas": 1},
        "params": {"mapping": {"fields": {"title": {"type": "text"}}}}}"#;
    let (status, body) = http(a, "PUT", "/api/index/books", index);
    assert_eq!(status, 200, "{body}");
    let bulk: String = (0..DOCS)
        .map(|i| {
            let title = if i % 3 == 0 {
                "rust in action"
            } else {
                "go in practice"
            };
            format!(
                "{}\n",
                json!({"key": format!("b{i}"), "doc": {"title": format!("{title} {i}")}})
            )
        })
        .collect();
    let (status, body) = http(a, "POST", "/api/source/books/bulk", &bulk);
    assert_eq!(status, 200, "{body}");
    // 8 PIndexes × 2 copies, every copy active.
    wait_for("16 active copies", Duration::from_secs(120), || {
        let (_, plans) = http(a, "GET", "/api/plan", "");
        let active = plans["plans"][0]["pindexes"]
            .as_array()?
            .iter()
            .flat_map(|p| p["copies"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["state"] == "active")
            .count();
        (active == 16).then_some(())
    });

    let browser = Browser::start();
    browser.goto(&format!("http://{a}/ui"));
    let rows = wait_for(
        "every node and copy on the map",
        Duration::from_secs(30),
        || {
            let rows = map_rows(&browser);
            let squares: u64 = rows.values().map(|(_, s)| s).sum();
            (rows.len() == 3 && squares == 16).then_some(rows)
        },
    );
    for uuid in &uuids {
        let (copies, squares) = rows[uuid];
        assert_eq!(copies, squares, "node {uuid}: {rows:?}");
    }
    let shots = artifacts();
    browser.screenshot(&shots.join("1-map.png"));

    // Drain the third node from the page: the button, then its confirmation.
    let leaving = &uuids[2];
    let drain = browser
        .find(&format!("tr[data-node='{leaving}'] button.drain"))
        .expect("a drain button on the node's row");
    browser.click(&drain);
    let confirm = wait_for("the drain confirmation", Duration::from_secs(5), || {
        browser.find(&format!("tr[data-node='{leaving}'] button.confirm-drain"))
    });
    browser.click(&confirm);
    let (_, tasks) = wait_for("the drain task", Duration::from_secs(30), || {
        let (_, tasks) = http(a, "GET", "/api/ctl/tasks", "");
        let found = tasks["tasks"].as_array()?.iter().any(|t| {
            t["type"] == "drain"
                && t["eject_nodes"]
                    .as_array()
                    .is_some_and(|n| n.contains(&json!(leaving)))
        });
        found.then_some(((), tasks))
    });
    assert!(
        tasks["tasks"].as_array().is_some_and(|t| t.len() == 1),
        "{tasks}"
    );
    browser.screenshot(&shots.join("2-draining.png"));
    let rows = wait_for(
        "the drained node empty on the map",
        Duration::from_secs(180),
        || {
            let rows = map_rows(&browser);
            let empty = rows
                .get(leaving)
                .is_some_and(|(copies, squares)| *copies == 0 && *squares == 0);
            let squares: u64 = rows.values().map(|(_, s)| s).sum();
            (empty && squares == 16).then_some(rows)
        },
    );
    assert_eq!(rows.len(), 3, "the drained node stays listed: {rows:?}");
    browser.screenshot(&shots.join("3-drained.png"));
    // The task shows as completed on the tasks tab.
    browser.goto(&format!("http://{a}/ui#tasks"));
    wait_for(
        "the completed drain on the tasks tab",
        Duration::from_secs(60),
        || {
            let status = browser.script(
            "const r = document.querySelector('#tasks tr[data-task]'); return r && r.dataset.status;",
            json!([]),
        );
            (status == "completed").then_some(())
        },
    );

    // A query from the page.
    browser.goto(&format!("http://{a}/ui#query"));
    wait_for(
        "the index in the query form",
        Duration::from_secs(30),
        || {
            let v = browser.script(
                "return document.getElementById('query-index').value;",
                json!([]),
            );
            (v == "books").then_some(())
        },
    );
    let text = browser.find("#query-text").expect("the query box");
    browser.type_into(&text, "title:rust");
    let run = browser.find("#query-run").expect("the run button");
    browser.click(&run);
    let shown: Value = wait_for("the query's hits", Duration::from_secs(30), || {
        let v = browser.script(
            "const s = document.getElementById('query-summary'); \
             return s && {total: Number(s.dataset.total), hits: document.querySelectorAll('#hits tr.hit').length, text: s.textContent};",
            json!([]),
        );
        (!v.is_null()).then_some(v)
    });
    assert_eq!(shown["total"], (DOCS / 3) as u64, "{shown}");
    assert_eq!(shown["hits"], 10, "{shown}");
    assert!(
        shown["text"]
            .as_str()
            .is_some_and(|t| t.contains("PIndexes 8/8 answered")),
        "{shown}"
    );
    browser.screenshot(&shots.join("4-query.png"));

    // The indexes tab counts the documents.
    browser.goto(&format!("http://{a}/ui#indexes"));
    wait_for(
        "the index's document count",
        Duration::from_secs(30),
        || {
            let docs = browser.script(
            "const c = document.querySelector(\"#indexes tr[data-index='books'] td.docs\"); return c && c.textContent;",
            json!([]),
        );
            (docs == json!(DOCS.to_string())).then_some(())
        },
    );
    browser.screenshot(&shots.join("5-indexes.png"));

    // At scale: 100 nodes in 10 groups, then 10,000 and 50,000 copies drawn from made-up
    // plans (the page's own render, in one script run so no refresh interleaves).
    browser.goto(&format!("http://{a}/ui#map"));
    for (pindexes, squares_per_node) in [(5_000u64, 100u64), (25_000, 0)] {
        let drawn = browser.script(SCALE_SCRIPT, json!([pindexes]));
        eprintln!("map of 100 nodes, {} copies: {drawn}", pindexes * 2);
        assert_eq!(drawn["rows"], 100, "{drawn}");
        assert_eq!(drawn["groups"], 10, "{drawn}");
        // Past 400 copies a node's row shows counts per index, not squares.
        assert_eq!(drawn["squares"], squares_per_node * 100, "{drawn}");
        assert_eq!(
            drawn["summaries"],
            if squares_per_node == 0 { 100 * 20 } else { 0 },
            "{drawn}"
        );
    }
    browser.screenshot(&shots.join("6-scale.png"));
    eprintln!("screenshots in {}", shots.display());
}
