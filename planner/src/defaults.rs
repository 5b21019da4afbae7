//! The planner's defaults, in one place: `PlannerOptions::default`, the move limits and the
//! command line's flags all read them.

pub const LEASE_TTL_MS: u64 = 5_000;
pub const DEBOUNCE_MS: u64 = 200;
pub const RESYNC_MS: u64 = 30_000;
pub const FAILOVER_DELAY_MS: u64 = 30_000;
pub const MAX_AUTO_FAILOVERS: u32 = 1;
pub const MOVES_IN_PER_NODE: u32 = 2;
pub const MOVES_OUT_PER_NODE: u32 = 2;
pub const MOVES: u32 = 64;
