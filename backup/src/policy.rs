//! What a repository definition may make a node do: which endpoint it dials, which files it
//! reads, which directory it writes, and whether it may use the machine's own cloud
//! credentials. Whoever may add a repository (the `operator` role) must not thereby make
//! every node send requests to a metadata service or an internal host, read the node's TLS
//! key as a "passphrase", write anywhere the node may, or lend out the instance's role.
//!
//! The rules are `tessera_auth::egress`'s (DESIGN decision 19): the endpoint goes through the
//! node's [`DialPolicy`], every `*_file` option through its [`PathPolicy`], and an `fs`
//! location must be an existing directory under one of the node's `--backup-path`s. They are
//! applied by [`RepoPolicy::check`], which [`crate::Repository::open`] runs on every node
//! that opens the repository (not only on the node that accepted its definition), so a
//! definition written before these rules, or straight into the Cfg, is held to them too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tessera_cfg::schema::RepoDef;

pub use tessera_auth::egress::{Address, DialPolicy, EgressError, PathPolicy};

use crate::BackupError;

/// The `credentials` option: the machine's ambient credentials (environment variables, web
/// identity, container and instance metadata), used only when a repository asks for them.
pub const AMBIENT: &str = "ambient";
/// The `credentials` option: unsigned requests (a public bucket).
pub const ANONYMOUS: &str = "anonymous";

/// A node's rules for repositories. The default dials anything but link-local and metadata
/// addresses, reads any file, and accepts no `fs` location.
#[derive(Debug, Clone, Default)]
pub struct RepoPolicy {
    /// Where an `s3` endpoint may be.
    pub dial: DialPolicy,
    /// Which files `credentials_file`, `passphrase_file` and `key_file` may name.
    pub paths: PathPolicy,
    /// The directories `fs` repositories may be under (`--backup-path`); none: no `fs`.
    pub fs_roots: Vec<PathBuf>,
}

/// Where an `s3` repository's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A file (checked by the path policy) with `access_key_id` and `secret_access_key`.
    File(PathBuf),
    /// The machine's: environment, web identity, container or instance metadata.
    Ambient,
    /// None: requests are not signed.
    Anonymous,
}

/// A definition as the policy let it through: the files to read, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `s3` only.
    pub credentials: Option<Credentials>,
    pub passphrase_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

fn refused(e: EgressError) -> BackupError {
    BackupError::Config {
        field: e.field().to_string(),
        reason: e.to_string(),
    }
}

fn config(field: &str, reason: String) -> BackupError {
    BackupError::Config {
        field: field.to_string(),
        reason,
    }
}

impl RepoPolicy {
    /// Any endpoint but metadata addresses, any file, `fs` repositories under `root`: for
    /// tools and tests.
    pub fn under(root: PathBuf) -> Self {
        Self {
            fs_roots: vec![root],
            ..Self::default()
        }
    }

    /// Whether a node may open `def`; the error names the field at fault.
    pub fn check(&self, def: &RepoDef) -> Result<Checked, BackupError> {
        let file = |name: &str| -> Result<Option<PathBuf>, BackupError> {
            def.options
                .get(name)
                .map(|path| self.paths.check(&format!("options.{name}"), path))
                .transpose()
                .map_err(refused)
        };
        let passphrase_file = file("passphrase_file")?;
        let key_file = file("key_file")?;
        let credentials = match def.repo_type.as_str() {
            "fs" => {
                self.check_fs(&def.location)?;
                None
            }
            "s3" => {
                self.check_s3_endpoint(def)?;
                Some(match (def.options.get("credentials"), file("credentials_file")?) {
                    (Some(_), Some(_)) => {
                        return Err(config(
                            "options.credentials",
                            "not with credentials_file".into(),
                        ))
                    }
                    (None, Some(path)) => Credentials::File(path),
                    (Some(v), None) if v == AMBIENT => {
                        self.check_ambient_endpoint(def)?;
                        Credentials::Ambient
                    }
                    (Some(v), None) if v == ANONYMOUS => Credentials::Anonymous,
                    (Some(v), None) => {
                        return Err(config(
                            "options.credentials",
                            format!("`{v}`: `{AMBIENT}` or `{ANONYMOUS}`"),
                        ))
                    }
                    (None, None) => return Err(config(
                        "options.credentials_file",
                        format!("an s3 repository names its credentials: a credentials_file, or credentials `{AMBIENT}` (the nodes' environment and instance metadata, never used unless asked for) or `{ANONYMOUS}`"),
                    )),
                })
            }
            other => return Err(config("type", format!("unknown repository type `{other}`"))),
        };
        Ok(Checked {
            credentials,
            passphrase_file,
            key_file,
        })
    }

    /// The machine's credentials sign every request, so they go to an endpoint of the
    /// definition's only where the node's operator named it (`--dial-allow HOST[:PORT]`; `*`
    /// does not count): whoever may add a repository must not collect the instance's role.
    fn check_ambient_endpoint(&self, def: &RepoDef) -> Result<(), BackupError> {
        let Some(endpoint) = def.options.get("endpoint") else {
            return Ok(());
        };
        let field = "options.endpoint";
        let port = if endpoint.starts_with("http://") {
            80
        } else {
            443
        };
        let address = Address::parse(field, endpoint, port).map_err(refused)?;
        if self.dial.names(&address) {
            return Ok(());
        }
        Err(config(
            field,
            format!("credentials `{AMBIENT}` are sent only to an endpoint a --dial-allow entry names; {address} is not named"),
        ))
    }

    /// An `fs` location: an existing directory under one of the roots, links followed.
    fn check_fs(&self, location: &str) -> Result<(), BackupError> {
        let outside = || {
            config(
                "location",
                format!(
                    "{location} is not an existing directory under a --backup-path of this node ({})",
                    self.fs_roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        };
        let dir = std::fs::canonicalize(location).map_err(|_| outside())?;
        let under = self
            .fs_roots
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .any(|root| dir.starts_with(root));
        if !dir.is_dir() || !under {
            return Err(outside());
        }
        Ok(())
    }

    /// The address an `s3` repository's requests go to: its `endpoint`, or AWS's endpoint
    /// for its region. Cluster nodes do not count as allowed (they serve no S3).
    fn check_s3_endpoint(&self, def: &RepoDef) -> Result<(), BackupError> {
        let none = BTreeSet::new();
        if let Some(region) = def.options.get("region") {
            region_ok(region)?;
        }
        match def.options.get("endpoint") {
            Some(endpoint) => {
                let field = "options.endpoint";
                // The scheme first (any port will do), then the port it implies.
                let address = Address::parse(field, endpoint, 443).map_err(refused)?;
                let http = def.options.get("allow_http").is_some_and(|v| v == "true");
                match address.scheme.as_deref() {
                    Some("https") => {}
                    Some("http") if http => {}
                    Some("http") => {
                        return Err(config(
                            field,
                            "an http:// endpoint needs allow_http `true`".into(),
                        ))
                    }
                    _ => {
                        return Err(config(
                            field,
                            format!("`{endpoint}`: an http:// or https:// URL"),
                        ))
                    }
                }
                let port = match address.scheme.as_deref() {
                    Some("http") => 80,
                    _ => 443,
                };
                let address = Address::parse(field, endpoint, port).map_err(refused)?;
                self.dial.check(field, &address, &none).map_err(refused)
            }
            None => {
                let region = def
                    .options
                    .get("region")
                    .map_or("us-east-1", String::as_str);
                let host = format!("https://s3.{region}.amazonaws.com");
                let address = Address::parse("options.region", &host, 443).map_err(refused)?;
                self.dial
                    .check("options.endpoint", &address, &none)
                    .map_err(refused)
            }
        }
    }
}

/// A region is a name (`eu-west-1`), never a piece of a host or URL.
fn region_ok(region: &str) -> Result<(), BackupError> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(config(
            "options.region",
            format!("`{region}` is not a region name (lowercase letters, digits and `-`)"),
        ))
    }
}

/// Reads a file the policy let through (a path it resolved).
pub(crate) fn read_checked(path: &Path, field: &str) -> Result<String, BackupError> {
    // Secrets files are small; a path naming something else (a device, a huge file) is
    // refused before it is read whole.
    const MAX_SECRET_FILE: u64 = 64 << 10;
    let meta = std::fs::metadata(path)
        .map_err(|e| config(field, format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() || meta.len() > MAX_SECRET_FILE {
        return Err(config(
            field,
            format!(
                "{} is not a file of at most {MAX_SECRET_FILE} bytes",
                path.display()
            ),
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| config(field, format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests;
