//! Tessera's gRPC services, generated from `tessera/v1/*.proto` at build time.
//!
//! So far: `tessera.v1.Node` (ping) and `tessera.v1.Source` (the source protocol). The
//! node-to-node query and topology services join here as they are built.

/// Version 1 of Tessera's services.
pub mod v1 {
    tonic::include_proto!("tessera.v1");
}
