//! `tessera ctl load --jetstream` and `tessera ctl source create-stream`: writing documents to
//! a NATS JetStream stream the way the `jetstream` source type reads them (each on its key's
//! partition subject, the key in a header), and making such a stream.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;
use tessera_sources::jetstream::producer::{self, Change, Producer, StreamSpec};
use tessera_sources::SourceError;

use super::{numbered_lines, progress, read_input, LoadArgs};
use crate::exit::{Exit, INVALID, NOT_FOUND, UNAVAILABLE};

/// Where a JetStream stream is and how to reach it.
#[derive(Args, Debug, Clone)]
pub struct JetStreamTarget {
    /// NATS servers, comma-separated (`nats://h1:4222,nats://h2:4222`). With `load`, writes
    /// to JetStream instead of a reference source.
    #[arg(long = "jetstream", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// The stream.
    #[arg(long, default_value = "DOCS")]
    pub stream: String,
    /// Subjects are `<prefix>.<partition>`.
    #[arg(long, default_value = "docs")]
    pub subject_prefix: String,
    /// A NATS credentials file (JWT and seed).
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// TLS to the servers (`tls://`), verified against this CA (PEM).
    #[arg(long)]
    pub nats_ca: Option<PathBuf>,
    /// A client certificate for servers that verify clients (PEM), with `--nats-key`.
    #[arg(long, requires = "nats_key")]
    pub nats_cert: Option<PathBuf>,
    #[arg(long, requires = "nats_cert")]
    pub nats_key: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum SourceCommand {
    /// Create a JetStream stream for Tessera: subjects `<prefix>.*`, file storage, no limits,
    /// the partition count in its description (so `load` needs no `--partitions`).
    CreateStream(CreateStreamArgs),
}

#[derive(Args)]
pub struct CreateStreamArgs {
    #[command(flatten)]
    pub target: JetStreamTarget,
    /// Partitions (what index definitions say as `source.params.partitions`).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub partitions: u32,
    /// Servers holding each message (3 in a 3-server cluster).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub replicas: u64,
}

async fn connect(target: &JetStreamTarget) -> Result<async_nats::Client, Exit> {
    if target.servers.is_empty() {
        return Err(Exit::new(
            INVALID,
            "--jetstream: name at least one NATS server",
        ));
    }
    let text = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let access = tessera_sources::jetstream::NatsAccess {
        credentials_file: text(&target.credentials_file),
        tls_ca_file: text(&target.nats_ca),
        tls_cert_file: text(&target.nats_cert),
        tls_key_file: text(&target.nats_key),
    };
    let client = tessera_sources::jetstream::connect(&target.servers, &access)
        .await
        .map_err(exit_of)?;
    // The client connects in the background: say so now if nothing answers.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() >= deadline {
            return Err(Exit::new(
                UNAVAILABLE,
                format!("no NATS server answers at {}", target.servers.join(",")),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(client)
}

fn exit_of(e: SourceError) -> Exit {
    let code = match e {
        SourceError::NotFound(_) => NOT_FOUND,
        SourceError::Invalid(_) => INVALID,
        SourceError::Unavailable(_) => UNAVAILABLE,
    };
    Exit::new(code, e.to_string())
}

pub async fn run(cmd: SourceCommand) -> Result<String, Exit> {
    match cmd {
        SourceCommand::CreateStream(args) => {
            let client = connect(&args.target).await?;
            let spec = StreamSpec {
                name: args.target.stream.clone(),
                subject_prefix: args.target.subject_prefix.clone(),
                partitions: args.partitions,
                replicas: args.replicas as usize,
            };
            let info = producer::create_stream(&client, &spec)
                .await
                .map_err(exit_of)?;
            Ok(format!(
                "stream `{}`: subjects {:?}, {} replicas, {} messages; {}",
                info.config.name,
                info.config.subjects,
                info.config.num_replicas,
                info.state.messages,
                info.config.description.unwrap_or_default()
            ))
        }
    }
}

/// One NDJSON line as a change: `{"key": .., "doc": {..}}`, `{"key": .., "delete": true}`, or
/// a plain document keyed by `key_field`.
fn change_of(line: &str, key_field: Option<&str>) -> Result<Change, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let key_of = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(field) = key_field {
        let key = key_of(&value[field])
            .ok_or_else(|| format!("no string or number field `{field}` for the key"))?;
        return Ok(Change::Put {
            key,
            doc: line.as_bytes().to_vec(),
        });
    }
    let key = key_of(&value["key"]).ok_or("`key` is missing or empty")?;
    match (&value["doc"], &value["delete"]) {
        (Value::Object(_), Value::Null | Value::Bool(false)) => Ok(Change::Put {
            key,
            doc: value["doc"].to_string().into_bytes(),
        }),
        (Value::Null, Value::Bool(true)) => Ok(Change::Delete { key }),
        (Value::Object(_), Value::Bool(true)) => {
            Err("a line has either `doc` or `\"delete\": true`, not both".into())
        }
        (Value::Null, _) => Err("`doc` is missing (or say `\"delete\": true`)".into()),
        _ => Err("`doc` must be a JSON object".into()),
    }
}

/// `tessera ctl load --jetstream ...`: publishes every line, counting acknowledgements.
pub async fn load(args: LoadArgs) -> Result<String, Exit> {
    let target = &args.jetstream;
    let text = read_input(&args.file)?;
    let lines = numbered_lines(&text);
    // Every line is checked before anything is published: a bad line loses nothing.
    let mut changes = Vec::with_capacity(lines.len());
    for (number, line) in &lines {
        let change = change_of(line, args.key_field.as_deref()).map_err(|e| {
            Exit::new(
                INVALID,
                format!(
                    "{} line {}: {e} (nothing published)",
                    args.file.display(),
                    number + 1
                ),
            )
        })?;
        changes.push(change);
    }
    let client = connect(target).await?;
    let mut producer = Producer::new(
        &client,
        &target.stream,
        &target.subject_prefix,
        args.partitions,
    )
    .await
    .map_err(exit_of)?;
    let what = format!("publishing to JetStream stream {}", target.stream);
    let mut bar = progress::Progress::new(&what, changes.len() as u64);
    let mut acked = 0u64;
    let failed = |acked: u64, e: SourceError| {
        Exit::new(
            UNAVAILABLE,
            format!("{e}; {acked} lines acknowledged before it (publishing again is safe: a key's last change wins)"),
        )
    };
    for change in changes {
        let done = producer.send(change).await.map_err(|e| failed(acked, e))?;
        acked += done;
        bar.advance(done);
    }
    let done = producer.flush().await.map_err(|e| failed(acked, e))?;
    acked += done;
    bar.advance(done);
    let seconds = bar.finish();
    Ok(format!(
        "published {acked} documents to JetStream stream `{}` ({} partitions on {}.*), all acknowledged, in {seconds:.1} s ({:.0}/s)",
        target.stream,
        producer.partitions(),
        target.subject_prefix,
        acked as f64 / seconds.max(1e-3)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_changes_or_say_why_not() {
        assert_eq!(
            change_of(r#"{"key": "a", "doc": {"t": 1}}"#, None),
            Ok(Change::Put {
                key: "a".into(),
                doc: br#"{"t":1}"#.to_vec()
            })
        );
        assert_eq!(
            change_of(r#"{"key": 7, "delete": true}"#, None),
            Ok(Change::Delete { key: "7".into() })
        );
        assert!(change_of(r#"{"id": "x", "t": 1}"#, Some("id")).is_ok());
        assert!(change_of(r#"{"t": 1}"#, Some("id"))
            .unwrap_err()
            .contains("`id`"));
        assert!(change_of(r#"{"doc": {}}"#, None)
            .unwrap_err()
            .contains("`key`"));
        assert!(change_of(r#"{"key": "a"}"#, None)
            .unwrap_err()
            .contains("`doc`"));
        assert!(change_of(r#"{"key": "a", "doc": {}, "delete": true}"#, None).is_err());
        assert!(change_of("nope", None).unwrap_err().contains("not JSON"));
    }
}
