//! The cost of authorising one request, as the node's middleware will pay it: parse the
//! bearer token, check it against its record (one HMAC-SHA-256), look the route up in the
//! permission table and ask the roles. Prints p50/p99/max over many requests.
//!
//! `cargo bench -p tessera-auth --bench check`

use std::time::Instant;

use tessera_auth::key;
use tessera_auth::permission::{rest_need, rest_target};

fn main() {
    let roles = [
        "searcher:books*".parse().expect("role"),
        "monitor".parse().expect("role"),
    ];
    let (token, record) = key::make("bench", &roles, 0, None).expect("key");
    let header = format!("Bearer {token}");
    let mut times = Vec::with_capacity(200_000);
    let mut allowed = 0u64;
    for i in 0..200_000u64 {
        let started = Instant::now();
        let token = header.strip_prefix("Bearer ").expect("bearer");
        let who = key::check(&record, token, i).expect("a good key");
        let template = "/api/index/{name}/query";
        let need = rest_need("POST", template).expect("in the table");
        let target = rest_target(template, "/api/index/books-7/query").expect("a name");
        allowed += u64::from(who.allows(need, target.as_deref()));
        times.push(started.elapsed().as_nanos() as u64);
    }
    assert_eq!(allowed, 200_000);
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!(
        "auth per request (key check + permission), 200k requests: p50 {:.2} µs, p99 {:.2} µs, max {:.1} µs",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
