//! Tessera's test rig and shared test suites.
//!
//! - [`etcd`]: real etcd processes (one member or a cluster) on free loopback ports in temp
//!   dirs, with kill/restart of a member. Every integration test that needs etcd uses it; it
//!   fails loudly when etcd is missing, it never skips.
//! - [`conformance`]: the one Store conformance suite, run against every backend.
//! - [`child`]: what every server started as a child process needs (log, tail, SIGKILL, a
//!   health GET). [`bench_docs`]: what the feed benchmarks index.
//! - [`nats`]: real NATS servers with JetStream (one, or a 3-server cluster), with SIGKILL
//!   and restart of a server, for the JetStream source's tests.
//! - [`netns`]: hosts in network namespaces on a bridge, with cuts and isolation, for
//!   partition tests (root).
//! - [`ports`]: loopback ports for child processes, claimed across test processes.
//! - [`wait`]: bounded waits with clear timeout messages, instead of sleeps.

pub mod bench_docs;
pub mod child;
pub mod conformance;
pub mod etcd;
pub mod etcd_secure;
pub mod fuzzing;
pub mod nats;
pub mod netns;
pub mod ports;
pub mod s3;
pub mod wait;

/// Logs to the test output once per process (`RUST_LOG` filters, default `warn`).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
