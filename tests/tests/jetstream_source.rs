//! The `jetstream` source type against a real nats-server: partitions and high seqs, a
//! partition streamed from the start and from a seq, live changes, deletions, a message
//! without a key, and history changes (purge, stream deleted and made again) answered with a
//! rollback.

use std::time::Duration;

use futures::StreamExt;
use tessera_sources::jetstream::producer::{Change, Producer};
use tessera_sources::jetstream::JetStreamSource;
use tessera_sources::{ChangeStream, SourceError, SourceEvent, SourceType};
use tessera_tests::nats::{create_docs_stream, docs_params, NatsCluster};

const PARTITIONS: u32 = 4;

async fn setup(nats: &NatsCluster) -> (async_nats::Client, JetStreamSource) {
    let client = async_nats::connect(nats.url(0)).await.expect("connect");
    create_docs_stream(&client, PARTITIONS).await;
    let params = docs_params(vec![nats.url(0)], PARTITIONS, None);
    let source = JetStreamSource::new(client.clone(), params, PARTITIONS);
    (client, source)
}

async fn publish(client: &async_nats::Client, changes: Vec<Change>) {
    let mut producer = Producer::new(client, "DOCS", "docs", None)
        .await
        .expect("producer");
    for change in changes {
        producer.send(change).await.expect("publish");
    }
    producer.flush().await.expect("acks");
}

fn put(key: &str, n: u32) -> Change {
    Change::Put {
        key: key.into(),
        doc: format!("{{\"n\": {n}}}").into_bytes(),
    }
}

/// The next `n` events of `stream`, within 10 s.
async fn next_events(stream: &mut ChangeStream, n: usize) -> Vec<SourceEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {n} events within 10 s: {events:?}",
                    events.len()
                )
            });
        events.push(next.expect("stream open").expect("an event"));
    }
    events
}

/// Keys in `partition`, from "k0".. — the routing producers use.
fn keys_in(partition: u32, count: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| tessera_sources::partition_of(k, PARTITIONS) == partition)
        .take(count)
        .collect()
}

#[tokio::test]
async fn a_partition_streams_stored_then_live_changes_and_resumes_after_a_seq() {
    let nats = NatsCluster::single();
    let (client, source) = setup(&nats).await;
    let keys = keys_in(2, 3);
    let mut changes: Vec<Change> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| put(k, i as u32))
        .collect();
    changes.push(Change::Delete {
        key: keys[0].clone(),
    });
    // Other partitions' messages take stream sequences in between.
    changes.extend(keys_in(1, 5).iter().map(|k| put(k, 9)));
    publish(&client, changes).await;

    let listed = source.partitions().await.expect("partitions");
    assert_eq!(listed.len(), PARTITIONS as usize);
    assert_eq!(
        listed[&2].high_seq, 4,
        "the delete is partition 2's last message"
    );
    assert_eq!(listed[&1].high_seq, 9);
    assert_eq!(listed[&0].high_seq, 0, "nothing in partition 0");
    let uuid = listed[&2].uuid.clone();
    assert!(
        listed.values().all(|p| p.uuid == uuid),
        "one history: {listed:?}"
    );

    let session = source.session(&[2]);
    let mut stream = session.stream(2, 0, "").await.expect("stream");
    let events = next_events(&mut stream, 5).await;
    assert_eq!(events[0], SourceEvent::Snapshot { uuid: uuid.clone() });
    assert!(
        matches!(&events[1], SourceEvent::Mutation { seq: 1, key, doc } if *key == keys[0] && doc == b"{\"n\": 0}")
    );
    assert!(matches!(&events[3], SourceEvent::Mutation { seq: 3, .. }));
    assert_eq!(
        events[4],
        SourceEvent::Deletion {
            seq: 4,
            key: keys[0].clone()
        }
    );

    // Live: a change published now arrives on the open stream.
    publish(&client, vec![put(&keys[1], 100)]).await;
    let live = next_events(&mut stream, 1).await;
    assert!(
        matches!(&live[0], SourceEvent::Mutation { seq: 10, key, .. } if *key == keys[1]),
        "{live:?}"
    );

    // Resuming after seq 3 gives what came after it in this partition only.
    let mut resumed = session.stream(2, 3, &uuid).await.expect("resume");
    let events = next_events(&mut resumed, 3).await;
    assert_eq!(events[0], SourceEvent::Snapshot { uuid: uuid.clone() });
    assert_eq!(
        events[1],
        SourceEvent::Deletion {
            seq: 4,
            key: keys[0].clone()
        }
    );
    assert!(matches!(&events[2], SourceEvent::Mutation { seq: 10, .. }));

    // A message without a key moves the position and indexes nothing.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Other", "x");
    let js = async_nats::jetstream::new(client.clone());
    js.publish_with_headers("docs.2", headers, "{}".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let skipped = next_events(&mut resumed, 1).await;
    assert!(
        matches!(&skipped[0], SourceEvent::Skipped { seq: 11, reason } if reason.contains("Tessera-Key")),
        "{skipped:?}"
    );

    // A partition the source does not have.
    assert!(matches!(
        session.stream(PARTITIONS, 0, "").await,
        Err(SourceError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_purge_or_a_stream_made_again_is_another_history() {
    let nats = NatsCluster::single();
    let (client, source) = setup(&nats).await;
    let keys = keys_in(0, 4);
    publish(&client, keys.iter().map(|k| put(k, 1)).collect()).await;
    let before = source.partitions().await.expect("partitions")[&0].clone();
    assert_eq!(before.high_seq, 4);
    let session = source.session(&[0]);

    // The same history resumes.
    let mut same = session.stream(0, 2, &before.uuid).await.expect("stream");
    assert_eq!(
        next_events(&mut same, 1).await[0],
        SourceEvent::Snapshot {
            uuid: before.uuid.clone()
        }
    );

    // Purged: every partition has a new uuid, and a position in the old history rolls back.
    let js = async_nats::jetstream::new(client.clone());
    js.get_stream("DOCS")
        .await
        .expect("stream")
        .purge()
        .await
        .expect("purge");
    let purged = source.partitions().await.expect("partitions");
    assert_ne!(purged[&0].uuid, before.uuid);
    // A stream open across the purge ends with a rollback too (the source watches the
    // stream's identity; the consumer alone would go on).
    // (Messages 3 and 4 may come first, if the consumer had them before the purge.)
    let rollback = SourceEvent::Rollback {
        uuid: purged[&0].uuid.clone(),
    };
    loop {
        let event = next_events(&mut same, 1).await.remove(0);
        if event == rollback {
            break;
        }
        assert!(
            matches!(event, SourceEvent::Mutation { seq: 3 | 4, .. }),
            "{event:?}"
        );
    }
    assert_eq!(purged[&0].high_seq, 0);
    let mut rolled = session.stream(0, 4, &before.uuid).await.expect("stream");
    assert_eq!(
        next_events(&mut rolled, 1).await[0],
        SourceEvent::Rollback {
            uuid: purged[&0].uuid.clone()
        }
    );
    // Nothing read yet is at home in any history.
    let mut fresh = session.stream(0, 0, &before.uuid).await.expect("stream");
    assert_eq!(
        next_events(&mut fresh, 1).await[0],
        SourceEvent::Snapshot {
            uuid: purged[&0].uuid.clone()
        }
    );

    // Deleted: the source says so; made again: another history again.
    js.delete_stream("DOCS").await.expect("delete");
    assert!(matches!(
        source.partitions().await,
        Err(SourceError::NotFound(_))
    ));
    assert!(matches!(
        session.stream(0, 4, &before.uuid).await,
        Err(SourceError::NotFound(_))
    ));
    let (client, source) = setup(&nats).await;
    publish(&client, vec![put(&keys[0], 2)]).await;
    let again = source.partitions().await.expect("partitions");
    assert_ne!(again[&0].uuid, before.uuid);
    assert_ne!(again[&0].uuid, purged[&0].uuid);
    let mut rolled = source
        .session(&[0])
        .stream(0, 1, &purged[&0].uuid)
        .await
        .expect("stream");
    assert_eq!(
        next_events(&mut rolled, 1).await[0],
        SourceEvent::Rollback {
            uuid: again[&0].uuid.clone()
        }
    );
}

#[tokio::test]
async fn a_server_that_demands_credentials_is_read_with_a_credentials_file() {
    let nats = NatsCluster::single_with_credentials();
    let creds = nats.credentials_file().display().to_string();
    // Without credentials the server refuses.
    let refused = async_nats::ConnectOptions::new().connect(nats.url(0)).await;
    assert!(refused.is_err(), "connected without credentials");

    let access = tessera_sources::jetstream::NatsAccess {
        credentials_file: Some(creds.clone()),
        ..Default::default()
    };
    let client = tessera_sources::jetstream::connect(&[nats.url(0)], &access)
        .await
        .expect("connect with credentials");
    create_docs_stream(&client, PARTITIONS).await;
    publish(&client, keys_in(3, 2).iter().map(|k| put(k, 1)).collect()).await;

    // The source opened from a definition naming the file reads the stream.
    let def = docs_params(vec![nats.url(0)], PARTITIONS, Some(creds)).definition("docs");
    let source = tessera_sources::Sources::default()
        .jetstream(&def)
        .await
        .expect("source");
    let listed = source.partitions().await.expect("partitions");
    assert_eq!(listed[&3].high_seq, 2);
    let mut stream = source.session(&[3]).stream(3, 0, "").await.expect("stream");
    let events = next_events(&mut stream, 3).await;
    assert!(
        matches!(events[2], SourceEvent::Mutation { seq: 2, .. }),
        "{events:?}"
    );

    // A credentials file that is not there is the definition's error, named.
    let mut missing = def.clone();
    missing
        .params
        .insert("credentials_file".into(), "/nonexistent.creds".into());
    let err = tessera_sources::Sources::default()
        .jetstream(&missing)
        .await
        .err();
    assert!(
        matches!(&err, Some(SourceError::Invalid(m)) if m.contains("credentials_file")),
        "{:?}",
        err.map(|e| e.to_string())
    );
}

#[tokio::test]
async fn a_server_over_tls_is_read_with_its_ca_and_a_client_certificate() {
    let nats = NatsCluster::single_with_tls();
    let (ca, cert, key) = nats.tls_files();
    let access = tessera_sources::jetstream::NatsAccess {
        tls_ca_file: Some(ca.clone()),
        tls_cert_file: Some(cert.clone()),
        tls_key_file: Some(key.clone()),
        ..Default::default()
    };
    let client = tessera_sources::jetstream::connect(&[nats.url(0)], &access)
        .await
        .expect("connect over TLS");
    create_docs_stream(&client, PARTITIONS).await;
    publish(&client, keys_in(3, 2).iter().map(|k| put(k, 1)).collect()).await;

    // A definition naming the files reads the stream.
    let mut params = docs_params(vec![nats.url(0)], PARTITIONS, None);
    params.tls_ca_file = Some(ca);
    params.tls_cert_file = Some(cert);
    params.tls_key_file = Some(key);
    let def = params.definition("docs");
    let source = tessera_sources::Sources::default()
        .jetstream(&def)
        .await
        .expect("source");
    assert_eq!(
        source.partitions().await.expect("partitions")[&3].high_seq,
        2
    );

    // Without a client certificate the server lets nothing through.
    let mut bare = def.clone();
    bare.params.remove("tls_cert_file");
    bare.params.remove("tls_key_file");
    let refused = tessera_sources::Sources::default()
        .jetstream(&bare)
        .await
        .expect("opened (connects in the background)")
        .partitions()
        .await;
    assert!(refused.is_err(), "read without a client certificate");

    // A tls:// server without a CA is the definition's error, named.
    let mut no_ca = def.params.clone();
    no_ca.remove("tls_ca_file");
    let no_ca = tessera_cfg::schema::SourceDef {
        params: no_ca,
        ..def.clone()
    };
    let err = tessera_sources::validate(&no_ca).expect_err("refused");
    assert_eq!(err.field, "source.params.tls_ca_file");
}
