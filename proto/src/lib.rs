//! Tessera's gRPC services, generated from `tessera/v1/*.proto` at build time.
//!
//! So far: `tessera.v1.Node` (ping, local PIndexes), `tessera.v1.Source` (the source
//! protocol) and `tessera.v1.Indexes` (the index API). The query service joins here with
//! scatter-gather search.

/// Version 1 of Tessera's services.
pub mod v1 {
    tonic::include_proto!("tessera.v1");
}
