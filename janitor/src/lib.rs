//! The janitor: makes a node's local PIndexes and feeds match the plan.
//!
//! Empty until the index hosting issue lands. The reconcile diff (plan + local state → actions)
//! will live here as a pure function, with an executor beside it doing the work.
