//! An `s3` repository's client: the bucket and prefix of its location, the endpoint its
//! definition names (checked by [`crate::policy`] first), and its credentials from the file
//! it names, or from the machine only when it asks for `credentials: ambient`. Built from an
//! empty configuration, never from the environment: a variable the node happens to have
//! (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`...) does not decide where a repository's requests go
//! or with whose credentials.

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::{ObjectStore, StaticCredentialProvider};
use tessera_cfg::schema::RepoDef;

use crate::policy::{read_checked, Credentials};
use crate::BackupError;

fn config(field: &str, reason: String) -> BackupError {
    BackupError::Config {
        field: field.to_string(),
        reason,
    }
}

/// The `s3` store of `def`, with the credentials the policy resolved.
pub(crate) fn store(
    def: &RepoDef,
    credentials: &Credentials,
) -> Result<Arc<dyn ObjectStore>, BackupError> {
    let (bucket, prefix) = match def.location.split_once('/') {
        Some((bucket, prefix)) => (bucket, prefix.trim_matches('/')),
        None => (def.location.as_str(), ""),
    };
    let builder = match credentials {
        Credentials::Ambient => AmazonS3Builder::from_env(),
        _ => AmazonS3Builder::new(),
    };
    let mut builder = builder
        .with_bucket_name(bucket)
        .with_region(
            def.options
                .get("region")
                .map_or("us-east-1", String::as_str),
        )
        // A few retries within half a minute, not object_store's minutes: a backup retries a
        // PIndex on another copy, and an API call should answer.
        .with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(30),
            backoff: Default::default(),
        })
        .with_client_options(
            object_store::ClientOptions::new()
                .with_connect_timeout(std::time::Duration::from_secs(5))
                .with_timeout(std::time::Duration::from_secs(300)),
        )
        // After the client options, which would otherwise reset it.
        .with_allow_http(def.options.get("allow_http").is_some_and(|v| v == "true"));
    if let Some(endpoint) = def.options.get("endpoint") {
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    builder = match credentials {
        Credentials::File(file) => {
            let (key, secret) = read_credentials(file)?;
            builder
                .with_access_key_id(key)
                .with_secret_access_key(secret)
        }
        Credentials::Ambient => builder,
        // A provider given, so that no ambient one (instance metadata) is even built.
        Credentials::Anonymous => builder.with_skip_signature(true).with_credentials(Arc::new(
            StaticCredentialProvider::new(AwsCredential {
                key_id: String::new(),
                secret_key: String::new(),
                token: None,
            }),
        )),
    };
    let store = builder
        .build()
        .map_err(|e| config("location", e.to_string()))?;
    if prefix.is_empty() {
        return Ok(Arc::new(store));
    }
    Ok(Arc::new(object_store::prefix::PrefixStore::new(
        store, prefix,
    )))
}

/// `access_key_id = ...` and `secret_access_key = ...` lines (as in an AWS credentials file;
/// other lines are ignored).
fn read_credentials(file: &std::path::Path) -> Result<(String, String), BackupError> {
    let field = "options.credentials_file";
    let text = read_checked(file, field)?;
    let mut key = None;
    let mut secret = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        match name.trim() {
            "access_key_id" | "aws_access_key_id" => key = Some(value.trim().to_string()),
            "secret_access_key" | "aws_secret_access_key" => {
                secret = Some(value.trim().to_string())
            }
            _ => {}
        }
    }
    match (key, secret) {
        (Some(k), Some(s)) => Ok((k, s)),
        _ => Err(config(
            field,
            format!(
                "{} has no access_key_id and secret_access_key lines",
                file.display()
            ),
        )),
    }
}
