//! The permission table: what every REST route (by method and template, as in
//! `docs/openapi.json`) and every gRPC method needs. Deny by default: a call not in the table
//! needs what nobody has. `tests` check the table against the OpenAPI document and the
//! `.proto` files, so a new route without an entry fails the build's tests.

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// Nothing: anyone may call (`/api/ping`).
    Open,
    /// Reading cluster state: monitor, operator, admin.
    Monitor,
    /// Reading one index's definition and status: its searchers and index admins, monitor,
    /// operator, admin.
    IndexRead,
    /// Querying and counting one index: its searchers and index admins, admin.
    Query,
    /// Creating, updating, deleting and controlling one index: its index admins, admin.
    IndexAdmin,
    /// Writing documents to one source: its ingesters, admin.
    Ingest,
    /// Topology changes, freeze, failover acknowledgement, backups, restores, recoveries:
    /// operator, admin.
    Operator,
    /// The Cfg itself, API keys: admin only.
    Admin,
    /// The nodes' own services (shard calls, local PIndexes, copies, source streams, saves):
    /// node identities only.
    Node,
}

use Need::*;

/// Every REST operation: method, path template, need. The index or source a scoped need
/// applies to is the template's `{name}`.
pub const REST: &[(&str, &str, Need)] = &[
    ("GET", "/api/ping", Open),
    ("GET", "/api/cfg", Admin),
    ("GET", "/api/nodes", Monitor),
    ("GET", "/api/node/status", Monitor),
    ("GET", "/api/plan", Monitor),
    ("GET", "/api/plan/explain", Monitor),
    ("GET", "/api/index", Monitor),
    ("GET", "/api/index/{name}", IndexRead),
    ("PUT", "/api/index/{name}", IndexAdmin),
    ("DELETE", "/api/index/{name}", IndexAdmin),
    ("GET", "/api/index/{name}/count", Query),
    ("GET", "/api/index/{name}/status", IndexRead),
    ("POST", "/api/index/{name}/{control}/{action}", IndexAdmin),
    ("POST", "/api/index/{name}/query", Query),
    ("GET", "/api/source", Monitor),
    ("GET", "/api/source/{name}", Monitor),
    ("PUT", "/api/source/{name}/doc/{key}", Ingest),
    ("DELETE", "/api/source/{name}/doc/{key}", Ingest),
    ("POST", "/api/source/{name}/bulk", Ingest),
    ("GET", "/api/cluster/health", Monitor),
    ("GET", "/api/ctl/topology", Monitor),
    ("POST", "/api/ctl/topology-change", Operator),
    ("GET", "/api/ctl/tasks", Monitor),
    ("GET", "/api/ctl/tasks/{id}", Monitor),
    ("POST", "/api/ctl/tasks/{id}/cancel", Operator),
    ("POST", "/api/ctl/freeze", Operator),
    ("POST", "/api/ctl/unfreeze", Operator),
    ("POST", "/api/ctl/failover/ack", Operator),
    ("GET", "/api/backup/repos", Monitor),
    ("GET", "/api/backup/repos/{name}", Monitor),
    ("PUT", "/api/backup/repos/{name}", Operator),
    ("DELETE", "/api/backup/repos/{name}", Operator),
    ("GET", "/api/backup/repos/{name}/snapshots", Monitor),
    ("POST", "/api/backup/repos/{name}/snapshots", Operator),
    ("GET", "/api/backup/repos/{name}/snapshots/{id}", Monitor),
    (
        "DELETE",
        "/api/backup/repos/{name}/snapshots/{id}",
        Operator,
    ),
    (
        "POST",
        "/api/backup/repos/{name}/snapshots/{id}/verify",
        Operator,
    ),
    ("POST", "/api/backup/repos/{name}/gc", Operator),
    ("POST", "/api/backup/restore", Operator),
    ("GET", "/api/backup/jobs", Monitor),
    ("GET", "/api/backup/jobs/{id}", Monitor),
    ("POST", "/api/ctl/recovery", Operator),
    ("GET", "/api/ctl/recovery", Monitor),
    ("GET", "/api/ctl/recovery/{id}", Monitor),
    ("POST", "/api/ctl/recovery/{id}/commit", Operator),
    ("POST", "/api/ctl/recovery/{id}/end", Operator),
    ("POST", "/api/ctl/recovery/{id}/abort", Operator),
    ("GET", "/api/ctl/recovery/auto", Monitor),
    ("PUT", "/api/ctl/recovery/auto", Operator),
    ("GET", "/api/keys", Admin),
    ("POST", "/api/keys", Admin),
    ("DELETE", "/api/keys/{id}", Admin),
    ("GET", "/metrics", Monitor),
    // The console's files hold no data (its calls need their own permissions), so a browser
    // can load it and ask for a key.
    ("GET", "/ui", Open),
    ("GET", "/ui/console.js", Open),
    ("GET", "/ui/console.css", Open),
];

/// Every gRPC method (`/tessera.v1.<Service>/<Method>`) and its need. The API services carry
/// the REST call's JSON; their index is the JSON's `name`.
pub const GRPC: &[(&str, Need)] = &[
    ("/tessera.v1.Indexes/PutIndex", IndexAdmin),
    ("/tessera.v1.Indexes/GetIndex", IndexRead),
    ("/tessera.v1.Indexes/ListIndexes", Monitor),
    ("/tessera.v1.Indexes/DeleteIndex", IndexAdmin),
    ("/tessera.v1.Indexes/CountIndex", Query),
    ("/tessera.v1.Indexes/IndexStatus", IndexRead),
    ("/tessera.v1.Indexes/ControlIndex", IndexAdmin),
    ("/tessera.v1.Indexes/GetPlan", Monitor),
    ("/tessera.v1.Search/Query", Query),
    ("/tessera.v1.Search/ShardStats", Node),
    ("/tessera.v1.Search/ShardSearch", Node),
    ("/tessera.v1.Node/Ping", Open),
    ("/tessera.v1.Node/LocalPIndexes", Node),
    ("/tessera.v1.Source/ListPartitions", Node),
    ("/tessera.v1.Source/Stream", Node),
    ("/tessera.v1.Source/Import", Node),
    ("/tessera.v1.Backup/SavePIndex", Node),
    ("/tessera.v1.Copy/TakeFileSet", Node),
    ("/tessera.v1.Copy/ReadFile", Node),
    ("/tessera.v1.Copy/ReleaseFileSet", Node),
    ("/tessera.v1.Supervisor/Topology", Monitor),
    ("/tessera.v1.Supervisor/TopologyChange", Operator),
    ("/tessera.v1.Supervisor/ListTasks", Monitor),
    ("/tessera.v1.Supervisor/GetTask", Monitor),
    ("/tessera.v1.Supervisor/CancelTask", Operator),
    ("/tessera.v1.Supervisor/Health", Monitor),
    ("/tessera.v1.Supervisor/Freeze", Operator),
    ("/tessera.v1.Supervisor/Unfreeze", Operator),
    ("/tessera.v1.Supervisor/AckFailovers", Operator),
    ("/tessera.v1.Supervisor/ExplainPIndex", Monitor),
];

/// What the REST operation `method` `template` needs; `None`: not in the table (denied).
/// A HEAD needs what its GET needs.
pub fn rest_need(method: &str, template: &str) -> Option<Need> {
    let method = if method.eq_ignore_ascii_case("HEAD") {
        "GET"
    } else {
        method
    };
    REST.iter()
        .find(|(m, t, _)| m.eq_ignore_ascii_case(method) && *t == template)
        .map(|(_, _, need)| *need)
}

/// What the gRPC method at `path` needs; `None`: not in the table (denied).
pub fn grpc_need(path: &str) -> Option<Need> {
    GRPC.iter().find(|(p, _)| *p == path).map(|(_, need)| *need)
}

/// Why a path's `{name}` segment names no index or source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the path's name segment is not valid percent-encoding of UTF-8")]
    NotUtf8,
    #[error("the path's name segment holds an encoded `/`")]
    Slash,
}

/// The index or source a REST call on `template` names: the segment of `path` where the
/// template has `{name}`, percent-decoded as the handler's extractor decodes it (so a glob is
/// matched against the name the handler acts on: `payroll%41` is `payrollA`). A segment
/// that does not decode to UTF-8, or decodes to one holding `/`, is refused.
pub fn rest_target<'a>(
    template: &str,
    path: &'a str,
) -> Result<Option<std::borrow::Cow<'a, str>>, TargetError> {
    let Some(at) = template.split('/').position(|s| s == "{name}") else {
        return Ok(None);
    };
    match path.split('/').nth(at).filter(|s| !s.is_empty()) {
        Some(segment) => percent_decode(segment).map(Some),
        None => Ok(None),
    }
}

/// `segment` with its `%XX` escapes decoded (a `%` not followed by two hex digits stays as
/// it is, as axum's extractor leaves it).
fn percent_decode(segment: &str) -> Result<std::borrow::Cow<'_, str>, TargetError> {
    if !segment.contains('%') {
        return Ok(std::borrow::Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| TargetError::NotUtf8)?;
    if decoded.contains('/') {
        return Err(TargetError::Slash);
    }
    Ok(std::borrow::Cow::Owned(decoded))
}

#[cfg(test)]
mod tests;
