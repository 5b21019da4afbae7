//! Field checks shared by the documents.

/// A broken rule of a document: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// A path like `plan.replicas` or `pindexes[3].copies[0].node`.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Index and PIndex names: a letter, then letters, digits, `_` or `-`; at most 64 bytes.
pub fn name(field: &str, value: &str) -> Result<(), FieldError> {
    let ok_start = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic());
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if value.is_empty() || value.len() > 64 || !ok_start || !ok_chars {
        return Err(FieldError::new(
            field,
            format!("`{value}`: must be 1 to 64 characters, a letter first, then letters, digits, `_` or `-`"),
        ));
    }
    Ok(())
}

/// Node uuids and similar identifiers: 1 to 64 letters, digits, `_` or `-`.
pub fn ident(field: &str, value: &str) -> Result<(), FieldError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(FieldError::new(
            field,
            format!("`{value}`: must be 1 to 64 letters, digits, `_` or `-`"),
        ));
    }
    Ok(())
}

/// `host:port` with a non-zero port.
pub fn host_port(field: &str, value: &str) -> Result<(), FieldError> {
    let bad = || FieldError::new(field, format!("`{value}`: must be host:port"));
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

/// A server group path like `zone-a/rack-1`: up to 8 non-empty segments of letters, digits,
/// `_`, `-` or `.`; empty means "no group".
pub fn group(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Ok(());
    }
    let segments: Vec<&str> = value.split('/').collect();
    let ok = segments.len() <= 8
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    if !ok {
        return Err(FieldError::new(
            field,
            format!("`{value}`: must be up to 8 `/`-separated segments of letters, digits, `_`, `-` or `.`"),
        ));
    }
    Ok(())
}
