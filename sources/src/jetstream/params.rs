//! A `jetstream` definition's `params`, read and checked with errors naming the field.

use serde::{Deserialize, Serialize};
use tessera_cfg::schema::{FieldError, SourceDef};

/// `{"servers": ["nats://h1:4222", ...], "stream": "DOCS", "subject_prefix": "docs",
/// "partitions": 64, "credentials_file": "/etc/tessera/nats.creds", "tls_ca_file": ...,
/// "tls_cert_file": ..., "tls_key_file": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamParams {
    pub servers: Vec<String>,
    pub stream: String,
    pub subject_prefix: String,
    /// The same as the definition's `source.partitions`; either may say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
    /// TLS to the servers, verified against this CA (PEM); `tls://` servers need it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
    /// A client certificate and its key (PEM), for servers that verify clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<String>,
}

/// How to reach the NATS servers beyond their addresses: credentials and TLS files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsAccess {
    pub credentials_file: Option<String>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
}

impl NatsAccess {
    /// A key naming the access, for sharing a connection between sources with the same.
    pub fn key(&self) -> String {
        let f = |o: &Option<String>| o.clone().unwrap_or_default();
        format!(
            "{}|{}|{}|{}",
            f(&self.credentials_file),
            f(&self.tls_ca_file),
            f(&self.tls_cert_file),
            f(&self.tls_key_file)
        )
    }
}

impl JetStreamParams {
    /// Reads and checks `source.params` of a `jetstream` definition.
    pub fn of(def: &SourceDef) -> Result<Self, FieldError> {
        let value = serde_json::Value::Object(def.params.clone());
        let params: Self = serde_json::from_value(value).map_err(|e| {
            let text = e.to_string();
            let field = text
                .split('`')
                .nth(1)
                .filter(|_| text.starts_with("unknown field") || text.starts_with("missing field"))
                .map_or("source.params".to_string(), |f| {
                    format!("source.params.{f}")
                });
            FieldError::new(field, text)
        })?;
        if params.servers.is_empty() {
            return Err(FieldError::new(
                "source.params.servers",
                "name at least one NATS server (nats://host:port)",
            ));
        }
        for (i, server) in params.servers.iter().enumerate() {
            let field = format!("source.params.servers[{i}]");
            if server.parse::<async_nats::ServerAddr>().is_err() {
                return Err(FieldError::new(
                    field,
                    format!("`{server}` is not a NATS server address (nats://host:port)"),
                ));
            }
            // The address the dial policy checks must be the one NATS dials, and a password
            // in it would be shown to everyone who may read the definition.
            let checked = match crate::dial::Address::parse(&field, server, 4222) {
                Ok(checked) => checked,
                Err(e) => return Err(FieldError::new(field, e.to_string())),
            };
            // The host the dial policy checks is the host NATS dials, or the server is
            // refused: two parsers must not disagree about where a definition points.
            let dialled = server.parse::<async_nats::ServerAddr>().ok();
            let same = dialled.is_some_and(|d| {
                d.host()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
                    == checked.host.trim_start_matches('[').trim_end_matches(']')
                    && d.port() == checked.port
            });
            if !same {
                return Err(FieldError::new(
                    field,
                    format!("`{server}`: NATS would dial another host than the one it names"),
                ));
            }
        }
        if !is_token(&params.stream) {
            return Err(FieldError::new(
                "source.params.stream",
                "a stream name: letters, digits, `-` and `_`",
            ));
        }
        if params.subject_prefix.is_empty() || !params.subject_prefix.split('.').all(is_token) {
            return Err(FieldError::new(
                "source.params.subject_prefix",
                "dot-separated tokens of letters, digits, `-` and `_` (no wildcards)",
            ));
        }
        match (params.partitions, def.partitions) {
            (None, None) => {
                return Err(FieldError::new(
                    "source.params.partitions",
                    "say how many partitions the stream's subjects have",
                ))
            }
            (Some(a), Some(b)) if a != b => {
                return Err(FieldError::new(
                    "source.params.partitions",
                    format!("{a} differs from source.partitions {b}"),
                ))
            }
            _ => {}
        }
        for (field, value) in [
            ("credentials_file", &params.credentials_file),
            ("tls_ca_file", &params.tls_ca_file),
            ("tls_cert_file", &params.tls_cert_file),
            ("tls_key_file", &params.tls_key_file),
        ] {
            if value.as_deref() == Some("") {
                return Err(FieldError::new(
                    format!("source.params.{field}"),
                    "must not be empty",
                ));
            }
        }
        if params.tls_cert_file.is_some() != params.tls_key_file.is_some() {
            return Err(FieldError::new(
                "source.params.tls_key_file",
                "tls_cert_file and tls_key_file go together",
            ));
        }
        let tls_servers = params.servers.iter().any(|s| s.starts_with("tls://"));
        if tls_servers && params.tls_ca_file.is_none() {
            return Err(FieldError::new(
                "source.params.tls_ca_file",
                "tls:// servers are verified against a CA: name its file",
            ));
        }
        Ok(params)
    }

    /// Credentials and TLS files, as `connect` takes them.
    pub fn access(&self) -> NatsAccess {
        NatsAccess {
            credentials_file: self.credentials_file.clone(),
            tls_ca_file: self.tls_ca_file.clone(),
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
        }
    }

    /// A definition's source `name` reading with these parameters.
    pub fn definition(&self, name: &str) -> SourceDef {
        let params = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(params)) => params,
            _ => serde_json::Map::new(),
        };
        SourceDef {
            source_type: "jetstream".into(),
            name: name.to_string(),
            partitions: None,
            params,
        }
    }

    pub fn partitions(&self, def: &SourceDef) -> u32 {
        self.partitions.or(def.partitions).unwrap_or(1)
    }

    /// The subject partition `partition`'s messages are published on.
    pub fn subject(&self, partition: u32) -> String {
        format!("{}.{partition}", self.subject_prefix)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(params: serde_json::Value) -> SourceDef {
        SourceDef {
            source_type: "jetstream".into(),
            name: "docs".into(),
            partitions: None,
            params: params.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn a_full_definition_reads() {
        let d = def(
            serde_json::json!({"servers": ["nats://127.0.0.1:4222"], "stream": "DOCS",
            "subject_prefix": "docs", "partitions": 64, "credentials_file": "/x.creds"}),
        );
        let p = JetStreamParams::of(&d).unwrap();
        assert_eq!(p.partitions(&d), 64);
        assert_eq!(p.subject(7), "docs.7");
        assert_eq!(p.definition("docs"), d, "written back as it was read");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                serde_json::json!({"stream": "DOCS", "subject_prefix": "docs", "partitions": 4}),
                "source.params.servers",
            ),
            (
                serde_json::json!({"servers": [], "stream": "DOCS", "subject_prefix": "docs", "partitions": 4}),
                "source.params.servers",
            ),
            (
                serde_json::json!({"servers": ["nats://a:1", "http://[::1"], "stream": "DOCS", "subject_prefix": "docs", "partitions": 4}),
                "source.params.servers[1]",
            ),
            (
                serde_json::json!({"servers": ["nats://a:1"], "stream": "DO CS", "subject_prefix": "docs", "partitions": 4}),
                "source.params.stream",
            ),
            (
                serde_json::json!({"servers": ["nats://a:1"], "stream": "DOCS", "subject_prefix": "docs.>", "partitions": 4}),
                "source.params.subject_prefix",
            ),
            (
                serde_json::json!({"servers": ["nats://a:1"], "stream": "DOCS", "subject_prefix": "docs"}),
                "source.params.partitions",
            ),
            (
                serde_json::json!({"servers": ["nats://a:1"], "stream": "DOCS", "subject_prefix": "docs", "partitions": 4, "url": "x"}),
                "source.params.url",
            ),
        ];
        for (params, field) in cases {
            let err = JetStreamParams::of(&def(params.clone())).unwrap_err();
            assert_eq!(err.field, field, "{params}: {}", err.reason);
        }
        let mut d = def(
            serde_json::json!({"servers": ["nats://a:1"], "stream": "DOCS", "subject_prefix": "docs", "partitions": 4}),
        );
        d.partitions = Some(8);
        assert_eq!(
            JetStreamParams::of(&d).unwrap_err().field,
            "source.params.partitions"
        );
    }
}
