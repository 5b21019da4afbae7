//! The planner: turns index definitions, wanted nodes and the previous plan into the next plan.
//!
//! Empty until the planner issue lands. The planning algorithm will live here as a pure function
//! over plain data (no I/O), with the elected planner service beside it doing the Cfg I/O.
