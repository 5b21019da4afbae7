//! Generates the Rust code of Tessera's gRPC services (needs `protoc`, package
//! protobuf-compiler; `scripts/deps.sh` installs it).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=tessera");
    tonic_prost_build::configure().compile_protos(
        &[
            "tessera/v1/node.proto",
            "tessera/v1/source.proto",
            "tessera/v1/index.proto",
            "tessera/v1/search.proto",
            "tessera/v1/supervisor.proto",
            "tessera/v1/backup.proto",
            "tessera/v1/copy.proto",
        ],
        &["."],
    )?;
    Ok(())
}
