//! The flags bounding the node's one port (`tessera_tls::port` does the bounding): how many
//! connections, from one client address, in TLS handshakes, and how long a request head and an
//! idle connection may take. Without them, idle or slow connections used up the node's file
//! descriptors and locked its peers out.

use std::time::Duration;

use clap::Args;
use tessera_tls::PortLimits;

/// The port's flags.
#[derive(Args, Clone, Debug)]
pub struct PortArgs {
    /// Connections the port holds at once (REST and gRPC, plain or TLS); past it a new
    /// connection is closed as soon as it is accepted.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(16..=1_000_000))]
    pub max_connections: u32,
    /// Of `--max-connections`, the connections only the cluster's nodes' addresses may take,
    /// so clients cannot starve peer calls (feeds open one connection per 64 source
    /// partitions they read; at most half of `--max-connections`).
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub node_reserved_connections: u32,
    /// Connections one client address may hold at once (the nodes' addresses are not capped
    /// by it).
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_client: u32,
    /// TLS handshakes of clients in progress at once; past it a new connection is closed.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_tls_handshakes: u32,
    /// The time a TLS handshake, an HTTP/1 request head, and a connection's first request may
    /// take (`10s`, `500ms`, `1m`). An HTTP/1 connection waiting for its next request is closed
    /// after it too.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// A client connection without a request in flight is closed after this long (`60s`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
}

impl PortArgs {
    /// The limits these flags say; warns when the open-files limit is below them.
    pub fn limits(&self) -> PortLimits {
        let limits = PortLimits {
            max_connections: self.max_connections as usize,
            reserved_for_nodes: self.node_reserved_connections.min(self.max_connections / 2)
                as usize,
            max_per_client: self.max_connections_per_client as usize,
            max_handshakes: self.max_tls_handshakes as usize,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        };
        if self.node_reserved_connections > self.max_connections / 2 {
            tracing::warn!(
                reserved = limits.reserved_for_nodes,
                "--node-reserved-connections is capped at half of --max-connections"
            );
        }
        let files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if let Some(files) = files.filter(|f| *f < u64::from(self.max_connections) + 1024) {
            tracing::warn!(
                open_files = files,
                max_connections = self.max_connections,
                "the open-files limit leaves less than 1024 descriptors beside --max-connections; raise it (LimitNOFILE) or lower --max-connections"
            );
        }
        limits
    }
}

/// `10s`, `500ms`, `2m`, or plain seconds → a duration of at least a millisecond.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        other => return Err(format!("unknown unit `{other}` (use ms, s or m)")),
    };
    if duration.is_zero() || duration > Duration::from_secs(24 * 3600) {
        return Err(format!("`{s}` is out of range (1ms..=24h)"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("s").is_err());
    }
}
