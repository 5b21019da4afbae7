//! Tenants stay apart: a key reads the documents of a source only if it holds a reading role
//! on that source's name, whatever index they are read through.
//!
//! The guard checks a call against the index it names; an index's documents, though, are its
//! source's, and the source is whatever the definition says. Without this rule a key scoped to
//! `books*` could define `books-x` over source `payroll` and query it (issue 31). So:
//!
//! - defining an index (`PUT /api/index/{name}`, gRPC `PutIndex`) needs, besides
//!   `IndexAdmin` on the index, `Query` on the source's name (the creator may read it);
//! - reading documents or counts (query, count, REST and gRPC) needs `Query` on the index
//!   *and* on its source's name — which also covers indexes made by others (an admin, a
//!   restore under another name, a recovery), since their documents are still their source's.
//!
//! With auth off nothing is checked.

use axum::http::StatusCode;
use axum::response::Response;
use tessera_auth::Need;
use tessera_cfg::schema::IndexDef;

use super::{Access, AuthMode, Caller};
use crate::problem::problem;

/// Whether the caller may read documents of the source named `source`.
fn may_read(access: &Access, caller: Option<&Caller>, source: &str) -> Result<(), String> {
    match caller {
        Some(c) if !c.enforced || c.identity.allows(Need::Query, Some(source)) => Ok(()),
        Some(c) => Err(c.identity.describe()),
        // In-process calls without the guard: allowed only when nothing is enforced.
        None if access.mode == AuthMode::Off => Ok(()),
        None => Err("a caller without identity".into()),
    }
}

/// The names a reader of `def`'s documents needs a role on: its source's name and, for a
/// JetStream source, its stream (the name alone is only a label there: the stream is where
/// the documents come from).
fn names_read(def: &IndexDef) -> Vec<&str> {
    let mut names = vec![def.source.name.as_str()];
    if def.source.source_type == "jetstream" {
        if let Some(stream) = def.source.params.get("stream").and_then(|s| s.as_str()) {
            names.push(stream);
        }
    }
    names
}

/// A 403 unless the caller may change `current`, the definition an update replaces: it
/// needs a reading role on what the index reads now (else a key could point another
/// tenant's index at a source of its own and read the old copies before they are replaced).
#[allow(clippy::result_large_err)]
pub fn may_replace(
    access: &Access,
    caller: Option<&Caller>,
    current: &IndexDef,
) -> Result<(), Response> {
    source_readable(
        access,
        caller,
        current,
        None,
        "which the index reads now, so may not change it",
    )
}

/// A 403 unless the caller may define an index over `def`'s source.
#[allow(clippy::result_large_err)]
pub fn may_define(
    access: &Access,
    caller: Option<&Caller>,
    def: &IndexDef,
) -> Result<(), Response> {
    source_readable(
        access,
        caller,
        def,
        Some("source.name"),
        "so may not define an index over it",
    )
}

/// A 403 unless the caller may read the documents of `def`'s source.
#[allow(clippy::result_large_err)]
pub fn may_read_documents(
    access: &Access,
    caller: Option<&Caller>,
    def: &IndexDef,
) -> Result<(), Response> {
    let why = format!("which index `{}` reads", def.name);
    source_readable(access, caller, def, None, &why)
}

/// A 403 naming `field` and saying `why` it matters, unless the caller may read `def`'s source.
#[allow(clippy::result_large_err)]
fn source_readable(
    access: &Access,
    caller: Option<&Caller>,
    def: &IndexDef,
    field: Option<&str>,
    why: &str,
) -> Result<(), Response> {
    for name in names_read(def) {
        may_read(access, caller, name).map_err(|who| {
            let message = format!(
                "{who} may not read `{name}` (source `{}`), {why} (a searcher or index_admin role matching the source's name, and a JetStream source's stream, is needed)",
                def.source.name
            );
            problem(StatusCode::FORBIDDEN, message, field)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_auth::Identity;

    fn caller(roles: &[&str]) -> Caller {
        Caller {
            identity: Identity::Key {
                id: "k".into(),
                name: "t".into(),
                roles: roles.iter().map(|r| r.parse().expect("role")).collect(),
            },
            enforced: true,
        }
    }

    fn def(index: &str, source: &str) -> IndexDef {
        serde_json::from_value(serde_json::json!({
            "format_version": 1, "name": index, "uuid": "u",
            "type": "fulltext", "source": {"type": "tessera", "name": source}
        }))
        .expect("def")
    }

    fn required() -> Access {
        Access {
            mode: AuthMode::Required,
            keys: None,
            audit: None,
        }
    }

    #[test]
    fn a_scoped_key_reads_only_sources_its_globs_match() {
        let access = required();
        let books = caller(&["index_admin:books*"]);
        assert!(may_define(&access, Some(&books), &def("books-x", "books-src")).is_ok());
        assert!(may_define(&access, Some(&books), &def("books-x", "payroll")).is_err());
        assert!(may_read_documents(&access, Some(&books), &def("books-x", "payroll")).is_err());
        let both = caller(&["searcher:books", "searcher:src-*"]);
        assert!(may_read_documents(&access, Some(&both), &def("books", "src-1")).is_ok());
        let ingest = caller(&["ingest:payroll", "searcher:books"]);
        assert!(
            may_read_documents(&access, Some(&ingest), &def("books", "payroll")).is_err(),
            "writing a source is not reading it"
        );
        assert!(may_read_documents(&access, Some(&caller(&["admin"])), &def("a", "b")).is_ok());
        let mut nats = def("books-x", "books-x");
        nats.source.source_type = "jetstream".into();
        nats.source.params.insert("stream".into(), "PAYROLL".into());
        assert!(
            may_define(&access, Some(&books), &nats).is_err(),
            "a JetStream source's name is a label: its stream is what is read"
        );
        let both = caller(&["index_admin:books*", "searcher:PAYROLL"]);
        assert!(may_define(&access, Some(&both), &nats).is_ok());
        assert!(may_read_documents(&access, None, &def("a", "b")).is_err());
        assert!(may_read_documents(&Access::off(), None, &def("a", "b")).is_ok());
    }
}
