//! API keys. A key is `tsk_<id>_<secret>`: 8 random bytes of id and 32 of secret, in hex. The
//! Cfg keeps only the id, name, roles, times and an HMAC-SHA-256 of the secret under a random
//! per-key salt: checking a key is one HMAC (microseconds), not a password hash per request,
//! and the secret is high-entropy, so a slow hash would protect nothing more.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::{Identity, Role};

const PREFIX: &str = "tsk_";

/// What the Cfg keeps of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The Cfg document's format (see `tessera_cfg::schema`).
    #[serde(default = "one")]
    pub format_version: u32,
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<u64>,
    /// Hex of the salt and of `HMAC-SHA-256(salt, secret)`.
    pub salt: String,
    pub hash: String,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an API key (expected tsk_<id>_<secret>)")]
    Malformed,
    #[error("API key {0} has expired")]
    Expired(String),
    #[error("API key {0} was revoked")]
    Revoked(String),
    #[error("wrong secret for API key {0}")]
    Wrong(String),
    #[error("role `{0}`: {1}")]
    Role(String, crate::role::RoleError),
    #[error("no system randomness: {0}")]
    Random(String),
}

/// Makes a key named `name` with `roles`, created at `now_ms`, expiring at `expires_ms`:
/// the token to hand out once, and the record to store.
pub fn make(
    name: &str,
    roles: &[Role],
    now_ms: u64,
    expires_ms: Option<u64>,
) -> Result<(String, KeyRecord), KeyError> {
    let rng = SystemRandom::new();
    let mut bytes = [0u8; 8 + 32 + 16];
    rng.fill(&mut bytes)
        .map_err(|_| KeyError::Random("fill failed".into()))?;
    let (id, rest) = bytes.split_at(8);
    let (secret, salt) = rest.split_at(32);
    let (id, secret) = (hex(id), hex(secret));
    Ok(made(id, secret, salt, name, roles, now_ms, expires_ms))
}

/// [`make`] under a given `id` (16 hex digits, else `Malformed`): for a key whose
/// record must be one of a kind in the Cfg (the bootstrap admin key's create-if-absent id).
pub fn make_as(
    id: &str,
    name: &str,
    roles: &[Role],
    now_ms: u64,
    expires_ms: Option<u64>,
) -> Result<(String, KeyRecord), KeyError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::Malformed);
    }
    let rng = SystemRandom::new();
    let mut bytes = [0u8; 32 + 16];
    rng.fill(&mut bytes)
        .map_err(|_| KeyError::Random("fill failed".into()))?;
    let (secret, salt) = bytes.split_at(32);
    let id = id.to_ascii_lowercase();
    Ok(made(id, hex(secret), salt, name, roles, now_ms, expires_ms))
}

fn made(
    id: String,
    secret: String,
    salt: &[u8],
    name: &str,
    roles: &[Role],
    now_ms: u64,
    expires_ms: Option<u64>,
) -> (String, KeyRecord) {
    let record = KeyRecord {
        format_version: 1,
        id: id.clone(),
        name: name.to_string(),
        roles: roles.iter().map(ToString::to_string).collect(),
        created_ms: now_ms,
        expires_ms,
        revoked_ms: None,
        salt: hex(salt),
        hash: hex(mac(salt, secret.as_bytes()).as_ref()),
    };
    (format!("{PREFIX}{id}_{secret}"), record)
}

/// The id a token names (to find its record), or why it is not a token.
pub fn id_of(token: &str) -> Result<&str, KeyError> {
    Ok(split(token)?.0)
}

fn split(token: &str) -> Result<(&str, &str), KeyError> {
    let rest = token.strip_prefix(PREFIX).ok_or(KeyError::Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(KeyError::Malformed)?;
    let hex_of = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_of(id, 16) || !hex_of(secret, 64) {
        return Err(KeyError::Malformed);
    }
    Ok((id, secret))
}

/// Checks `token` against its `record` at `now_ms`: the identity it proves.
pub fn check(record: &KeyRecord, token: &str, now_ms: u64) -> Result<Identity, KeyError> {
    let (id, secret) = split(token)?;
    let wrong = || KeyError::Wrong(id.to_string());
    if id != record.id {
        return Err(wrong());
    }
    let salt = unhex(&record.salt).ok_or_else(wrong)?;
    let hash = unhex(&record.hash).ok_or_else(wrong)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salt);
    hmac::verify(&key, secret.as_bytes(), &hash).map_err(|_| wrong())?;
    if record.revoked_ms.is_some() {
        return Err(KeyError::Revoked(record.id.clone()));
    }
    if record.expires_ms.is_some_and(|at| now_ms >= at) {
        return Err(KeyError::Expired(record.id.clone()));
    }
    let roles = record
        .roles
        .iter()
        .map(|r| r.parse().map_err(|e| KeyError::Role(r.clone(), e)))
        .collect::<Result<_, _>>()?;
    Ok(Identity::Key {
        id: record.id.clone(),
        name: record.name.clone(),
        roles,
    })
}

/// `30d`, `12h`, `90m`, `45s` as milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).filter(|ms| *ms > 0)
}

fn mac(salt: &[u8], secret: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), secret)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_proves_its_roles_until_it_expires_or_is_revoked() {
        let roles = ["searcher:books*".parse().unwrap(), Role::Monitor];
        let (token, record) = make("ci", &roles, 1_000, Some(5_000)).unwrap();
        assert!(token.starts_with("tsk_") && token.len() == 4 + 16 + 1 + 64);
        assert!(
            !serde_json::to_string(&record)
                .unwrap()
                .contains(&token[21..]),
            "the secret is not stored"
        );
        assert_eq!(id_of(&token).unwrap(), record.id);
        let who = check(&record, &token, 2_000).unwrap();
        assert!(who.allows(crate::Need::Query, Some("books-1")));
        assert!(!who.allows(crate::Need::Query, Some("news")));
        assert_eq!(
            check(&record, &token, 5_000),
            Err(KeyError::Expired(record.id.clone()))
        );
        let revoked = KeyRecord {
            revoked_ms: Some(1_500),
            ..record.clone()
        };
        assert_eq!(
            check(&revoked, &token, 2_000),
            Err(KeyError::Revoked(record.id.clone()))
        );
        // Another secret under the same id, a malformed token.
        let forged = format!("tsk_{}_{}", record.id, "0".repeat(64));
        assert_eq!(
            check(&record, &forged, 2_000),
            Err(KeyError::Wrong(record.id.clone()))
        );
        for bad in [
            "",
            "tsk_",
            "Bearer x",
            &token[..token.len() - 1],
            &token.replace("tsk_", "tsx_"),
        ] {
            assert!(check(&record, bad, 2_000).is_err(), "{bad}");
        }
        // Two keys never share an id or a secret.
        let (other, _) = make("ci", &roles, 1_000, None).unwrap();
        assert_ne!(other[..21], token[..21]);
    }

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration_ms("30d"), Some(30 * 86_400_000));
        assert_eq!(parse_duration_ms("90m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("0h"), None);
        assert_eq!(parse_duration_ms("12"), None);
        assert_eq!(parse_duration_ms("3w"), None);
        assert_eq!(parse_duration_ms("99999999999999999999d"), None);
    }

    #[test]
    fn a_key_made_under_a_given_id_checks_like_any() {
        let roles = ["admin".parse().expect("role")];
        let (token, record) = make_as("B0075742A9000001", "b", &roles, 0, Some(10)).expect("key");
        assert_eq!(record.id, "b0075742a9000001");
        assert_eq!(id_of(&token), Ok("b0075742a9000001"));
        assert!(check(&record, &token, 5).is_ok());
        assert_eq!(
            check(&record, &token, 10),
            Err(KeyError::Expired(record.id.clone()))
        );
        let (other, _) = make_as("b0075742a9000001", "b", &roles, 0, None).expect("key");
        assert_ne!(other, token, "a fresh secret each time");
        assert!(make_as("xyz", "b", &roles, 0, None).is_err());
    }
}
