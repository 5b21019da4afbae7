use super::*;

#[test]
fn every_family_renders_and_parses_as_prometheus_text() {
    let m = metrics();
    m.queries.with_label_values(&["docs", "ok"]).inc();
    m.query_duration
        .with_label_values(&["docs", "whole"])
        .observe(0.02);
    m.cfg_duration.with_label_values(&["get"]).observe(0.001);
    let scraped = families::INDEX_DOCUMENTS
        .family([(vec!["docs"], 42.0)])
        .into_iter()
        .collect();
    let text = render(scraped);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("parses");
    let value = |name: &str| {
        parsed
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| s.value.clone())
    };
    assert!(
        matches!(value("tessera_queries_total"), Some(prometheus_parse::Value::Counter(v)) if v == 1.0),
        "{text}"
    );
    assert!(
        matches!(value("tessera_index_documents"), Some(prometheus_parse::Value::Gauge(v)) if v == 42.0),
        "{text}"
    );
    assert!(
        matches!(value("tessera_build_info"), Some(prometheus_parse::Value::Gauge(v)) if v == 1.0),
        "{text}"
    );
    assert!(value("process_resident_memory_bytes").is_some(), "{text}");
    assert!(
        matches!(value("process_cpu_seconds_total"), Some(prometheus_parse::Value::Counter(v)) if v >= 0.0),
        "{text}"
    );
    assert!(
        matches!(
            value("tessera_query_duration_seconds"),
            Some(prometheus_parse::Value::Histogram(_))
        ),
        "{text}"
    );
}

#[test]
fn names_follow_the_conventions() {
    let mut families = REGISTRY.0.gather();
    families.extend(process::families());
    for f in &families {
        let name = f.name();
        assert!(
            name.starts_with("tessera_") || name.starts_with("process_"),
            "{name}"
        );
        let counter = f.get_field_type() == prometheus::proto::MetricType::COUNTER;
        assert_eq!(counter, name.ends_with("_total"), "{name}");
        assert!(!name.contains("milli") && !name.contains("nanos"), "{name}");
    }
    for s in families::SCRAPED {
        assert!(s.name.starts_with("tessera_") && !s.name.ends_with("_total"));
    }
}

#[test]
fn a_deleted_index_stops_being_exported() {
    let m = metrics();
    m.feed_changes.with_label_values(&["gone"]).inc_by(3);
    m.queries.with_label_values(&["gone", "error"]).inc();
    assert!(render(Vec::new()).contains("index=\"gone\""));
    m.forget_index("gone");
    assert!(!render(Vec::new()).contains("index=\"gone\""));
}

#[test]
fn the_process_figures_are_read() {
    let f = process::figures();
    assert!(f.threads.is_some_and(|t| t >= 1), "{f:?}");
    assert!(f.open_fds.is_some_and(|n| n >= 3), "{f:?}");
    assert!(f.max_fds.is_some_and(|n| n >= 64), "{f:?}");
    assert!(f.resident_bytes.is_some_and(|r| r > 0), "{f:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    assert!(
        f.start_time_seconds
            .is_some_and(|s| s <= now + 1.0 && s > now - 86_400.0 * 365.0),
        "{f:?}"
    );
}

#[test]
fn the_process_families_are_the_ones_named() {
    let mut rendered: Vec<String> = process::families()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    rendered.sort();
    assert_eq!(rendered, process::NAMES);
}
