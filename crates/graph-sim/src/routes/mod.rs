//! HTTP routes: Graph v1.0 endpoints and the `/_sim/` admin API.

pub mod admin;
pub mod context;
pub mod graph;
pub mod respond;
