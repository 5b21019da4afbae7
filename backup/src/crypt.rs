//! Encryption at rest: XChaCha20-Poly1305 (authenticated: a changed byte or a wrong key fails
//! to open, never decrypts to garbage) with a 32-byte key from a key file (64 hex digits) or
//! from a passphrase (Argon2id over the repository's salt). The key never enters the Cfg; a
//! repository records only its salt and a value sealed with the key, so a wrong key is told at
//! once, before any blob is read.

use argon2::Argon2;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::BackupError;

const NONCE: usize = 24;
/// What `encryption.json` seals, to check a key against.
const CHECK: &[u8] = b"tessera repository key check";

/// A repository key.
#[derive(Clone)]
pub struct Key(XChaCha20Poly1305);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Where a repository's key comes from (the repository's options name the file; the
/// node's [`crate::policy::RepoPolicy`] let it through).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file holding a passphrase (its first line).
    Passphrase(String),
    /// A file holding 64 hex digits.
    KeyFile(String),
}

/// What an encrypted repository records about its key (`encryption.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub format: u32,
    /// `argon2id` (passphrase) or `raw` (key file).
    pub kdf: String,
    pub salt: String,
    /// `CHECK` sealed with the key.
    pub check: String,
}

fn config(field: &str, reason: String) -> BackupError {
    BackupError::Config {
        field: field.to_string(),
        reason,
    }
}

impl KeySource {
    fn field(&self) -> &'static str {
        match self {
            KeySource::Passphrase(_) => "options.passphrase_file",
            KeySource::KeyFile(_) => "options.key_file",
        }
    }

    fn kdf(&self) -> &'static str {
        match self {
            KeySource::Passphrase(_) => "argon2id",
            KeySource::KeyFile(_) => "raw",
        }
    }

    /// The key, with `salt` for a passphrase.
    pub fn key(&self, salt: &[u8]) -> Result<Key, BackupError> {
        let mut bytes = [0u8; 32];
        match self {
            KeySource::Passphrase(file) => {
                let text = crate::policy::read_checked(std::path::Path::new(file), self.field())?;
                let pass = text.lines().next().unwrap_or_default();
                if pass.is_empty() {
                    return Err(config(self.field(), format!("{file} holds no passphrase")));
                }
                Argon2::default()
                    .hash_password_into(pass.as_bytes(), salt, &mut bytes)
                    .map_err(|e| config(self.field(), e.to_string()))?;
            }
            KeySource::KeyFile(file) => {
                let text = crate::policy::read_checked(std::path::Path::new(file), self.field())?;
                let raw = hex::decode(text.trim())
                    .map_err(|e| config(self.field(), format!("{file}: not hex: {e}")))?;
                if raw.len() != 32 {
                    return Err(config(
                        self.field(),
                        format!("{file}: 64 hex digits (32 bytes) expected"),
                    ));
                }
                bytes.copy_from_slice(&raw);
            }
        }
        XChaCha20Poly1305::new_from_slice(&bytes)
            .map(Key)
            .map_err(|e| config(self.field(), e.to_string()))
    }

    /// A new record for a repository about to be encrypted with this key.
    pub fn new_record(&self) -> Result<(KeyRecord, Key), BackupError> {
        let salt: [u8; 16] = rand_bytes();
        let key = self.key(&salt)?;
        let record = KeyRecord {
            format: 1,
            kdf: self.kdf().to_string(),
            salt: hex::encode(salt),
            check: hex::encode(seal(&key, CHECK)?),
        };
        Ok((record, key))
    }

    /// The key, checked against the repository's record: a wrong key is an error naming it.
    pub fn open_record(&self, record: &KeyRecord) -> Result<Key, BackupError> {
        if record.kdf != self.kdf() {
            return Err(config(
                self.field(),
                format!(
                    "the repository's key comes from {} (`{}`)",
                    if record.kdf == "raw" {
                        "a key file"
                    } else {
                        "a passphrase"
                    },
                    record.kdf
                ),
            ));
        }
        let salt = hex::decode(&record.salt).map_err(|e| damaged_record(e.to_string()))?;
        let key = self.key(&salt)?;
        let check = hex::decode(&record.check).map_err(|e| damaged_record(e.to_string()))?;
        match open(&key, &check) {
            Ok(plain) if plain == CHECK => Ok(key),
            _ => Err(BackupError::WrongKey),
        }
    }
}

fn damaged_record(reason: String) -> BackupError {
    BackupError::Damaged {
        what: "encryption.json".into(),
        reason,
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

/// `plain` sealed: a random nonce, then the ciphertext with its tag.
pub fn seal(key: &Key, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = key
        .0
        .encrypt(&nonce, plain)
        .map_err(|e| BackupError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(NONCE + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// What [`seal`] sealed; an error when the bytes were changed or the key is not the one.
pub fn open(key: &Key, sealed: &[u8]) -> Result<Vec<u8>, BackupError> {
    if sealed.len() < NONCE {
        return Err(BackupError::WrongKey);
    }
    let (nonce, body) = sealed.split_at(NONCE);
    key.0
        .decrypt(XNonce::from_slice(nonce), body)
        .map_err(|_| BackupError::WrongKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_key_opens_wrong_key_and_changed_bytes_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("pass");
        let bad = dir.path().join("other");
        std::fs::write(&good, "correct horse\n").unwrap();
        std::fs::write(&bad, "battery staple\n").unwrap();
        let source = KeySource::Passphrase(good.display().to_string());
        let (record, key) = source.new_record().unwrap();
        let again = source.open_record(&record).unwrap();
        let sealed = seal(&key, b"segment").unwrap();
        assert_eq!(open(&again, &sealed).unwrap(), b"segment");
        let wrong = KeySource::Passphrase(bad.display().to_string());
        assert!(matches!(
            wrong.open_record(&record),
            Err(BackupError::WrongKey)
        ));
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert!(open(&key, &changed).is_err());
    }
}
