//! An API key as the Cfg keeps it: [`KeyRecord`] (`tessera-auth` owns the type and the check;
//! here are the rules a stored record must keep). Never the secret, only its keyed hash.

use tessera_auth::key::KeyRecord;
use tessera_auth::Role;

use super::{Document, FieldError};

impl Document for KeyRecord {
    const KIND: &'static str = "API key";
    const FORMAT_VERSION: u32 = 1;

    fn validate(&self) -> Result<(), FieldError> {
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(&self.id, 16) {
            return Err(FieldError::new("id", "16 hex digits"));
        }
        super::validate::name("name", &self.name)?;
        if self.roles.is_empty() {
            return Err(FieldError::new("roles", "a key needs at least one role"));
        }
        for (i, role) in self.roles.iter().enumerate() {
            role.parse::<Role>()
                .map_err(|e| FieldError::new(format!("roles[{i}]"), e.to_string()))?;
        }
        if !hex(&self.salt, 32) {
            return Err(FieldError::new("salt", "32 hex digits"));
        }
        if !hex(&self.hash, 64) {
            return Err(FieldError::new("hash", "64 hex digits (HMAC-SHA-256)"));
        }
        Ok(())
    }
}
