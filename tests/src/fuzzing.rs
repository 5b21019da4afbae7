//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), here so that the committed corpora
//! are replayed by the ordinary test suite (`tests/tests/fuzz_corpora.rs`) on stable Rust, and
//! so that a crash found by `scripts/fuzz.sh` becomes a regression test by adding its input to
//! the corpus. Each takes arbitrary bytes and must neither panic nor hang: every error is a
//! value.

use tessera_cfg::schema::{
    self, ClusterControl, CopyReport, IndexDef, IndexPlan, NodeDef, NodeLiveness, TopologyTask,
};
use tessera_index::mapping::Mapping;
use tessera_search::dsl::{QuerySpec, QueryStringSpec, Target};

/// A mapping with every field type, so that typed terms and ranges are parsed too.
fn mapping() -> Mapping {
    let params = serde_json::json!({"mapping": {"default_analyzer": "en", "fields": {
        "title": {"type": "text"}, "tag": {"type": "keyword"}, "year": {"type": "i64"},
        "price": {"type": "f64"}, "when": {"type": "date"}, "ok": {"type": "bool"}}}});
    Mapping::from_params(&params).unwrap_or_else(|_| dynamic())
}

/// The mapping of an index without one (whole documents, dynamic).
fn dynamic() -> Mapping {
    Mapping::from_params(&serde_json::Value::Null).expect("the dynamic mapping")
}

/// A query request body: parsed, validated, and its query built against a typed mapping and
/// the dynamic one.
pub fn query_request(data: &[u8]) {
    let Ok(parsed) = tessera_search::request::parse(data) else {
        return;
    };
    for mapping in [mapping(), dynamic()] {
        let _ = Target::for_mapping(&mapping).build(&parsed.request.query, "query");
    }
}

/// A `query_string` (the text after `{"query_string": ...}`), built against both mappings.
pub fn query_string(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let spec = QuerySpec::QueryString(QueryStringSpec::Text(text.to_string()));
    for mapping in [mapping(), dynamic()] {
        let _ = Target::for_mapping(&mapping).build(&spec, "query");
    }
}

/// A bulk NDJSON body, as the source's bulk route reads it.
pub fn bulk_ndjson(data: &[u8]) {
    let (items, bad) = tessera_source::rest::parse_bulk(data);
    // At most one item a line, the bad line named within the body, and every document taken
    // is a JSON object.
    let lines = data.split(|&b| b == b'\n').count();
    assert!(
        items.len() <= lines,
        "{} items from {lines} lines",
        items.len()
    );
    if let Some((line, _)) = bad {
        assert!(line >= 1 && line <= lines, "bad line {line} of {lines}");
    }
    for item in &items {
        if let tessera_source::log::Append::Put { doc, .. } = item {
            let object = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(doc);
            assert!(object.is_ok(), "a document taken is not a JSON object");
        }
    }
}

/// Stored Cfg documents of every kind (`decode`), and user input (`decode_input`).
pub fn cfg_documents(data: &[u8]) {
    let key = "/tessera/fuzz/x";
    let _ = schema::decode::<IndexDef>(key, data);
    let _ = schema::decode::<NodeDef>(key, data);
    let _ = schema::decode::<NodeLiveness>(key, data);
    let _ = schema::decode::<IndexPlan>(key, data);
    let _ = schema::decode::<CopyReport>(key, data);
    let _ = schema::decode::<TopologyTask>(key, data);
    let _ = schema::decode::<ClusterControl>(key, data);
    if let Ok(def) = schema::decode_input::<IndexDef>(key, data) {
        // A definition that passed validation is within every bound.
        let _ = tessera_cfg::limits::pindex_count(
            def.source.partitions(),
            def.plan.max_partitions_per_pindex,
            def.plan.index_partitions,
        );
    }
    let _ = schema::decode_input::<NodeDef>(key, data);
    let _ = schema::decode_input::<IndexPlan>(key, data);
}

/// Node-to-node and source protocol messages as a server receives them: decoded, then put
/// through the checks the server runs before acting.
pub fn protocol_messages(data: &[u8]) {
    use prost::Message;
    use tessera_proto::v1 as pb;
    let _ = pb::StreamRequest::decode(data);
    let _ = pb::ListPartitionsRequest::decode(data);
    let _ = pb::StreamEvent::decode(data);
    if let Ok(request) = pb::ShardSearchRequest::decode(data) {
        let _ = tessera_coord::shard::check(&request);
    }
    if let Ok(request) = pb::ShardRequest::decode(data) {
        let _ = tessera_coord::shard::check_shard(&request);
    }
    let _ = pb::LocalPIndexesRequest::decode(data);
}
