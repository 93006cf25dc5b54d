//! entrasync: a fresh Postgres copy of Microsoft Entra ID directories, kept through Graph delta queries.

pub mod graph_sim;
pub mod model;
