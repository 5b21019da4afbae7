//! Tessera's gRPC services, generated from `tessera/v1/*.proto` at build time.
//!
//! `tessera.v1.Node` (ping, local PIndexes), `tessera.v1.Source` (the source protocol),
//! `tessera.v1.Indexes` (the index API), `tessera.v1.Search` (queries, and the two phases
//! of scatter-gather between nodes) and `tessera.v1.Supervisor` (topology changes, tasks,
//! health, explain), `tessera.v1.Copy` (a PIndex's files at a commit, for another node or
//! cluster). Beside the generated code, [`peers`]: the one pooled channel per peer that
//! every node-to-node call goes through.

pub mod peers;

/// Version 1 of Tessera's services.
pub mod v1 {
    tonic::include_proto!("tessera.v1");
}
