//! entrasync: a fresh Postgres copy of Microsoft Entra ID directories, kept through Graph delta queries.
//! Module responsibilities and their allowed dependencies are in ARCHITECTURE §2.

// External input must never panic the process: no unwrap() outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod actors;
pub mod api;
pub mod bench;
pub mod config;
pub mod demo;
pub mod graph;
pub mod graph_sim;
pub mod metrics;
pub mod model;
pub mod queue;
pub mod register;
pub mod schedule;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
