//! HTTP routes: Graph v1.0 endpoints (directory classes, `/organization`) and the `/_sim/` admin API.

pub mod admin;
pub mod context;
pub mod graph;
pub mod organization;
pub mod respond;
pub mod transitive;
