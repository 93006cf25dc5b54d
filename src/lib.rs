//! entrasync: a fresh Postgres copy of Microsoft Entra ID directories, kept through Graph delta queries.
//! Module responsibilities and their allowed dependencies are in docs/architecture.md.

// External input must never panic the process: no unwrap() outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod access;
pub mod actors;
pub mod api;
pub mod backoff;
#[cfg(feature = "emulator")]
pub mod bench;
#[cfg(feature = "emulator")]
pub mod chaos;
pub mod config;
#[cfg(feature = "emulator")]
pub mod demo;
pub mod graph;
pub mod mapping;
pub mod metrics;
pub use entrasync_model as model;
pub mod queue;
pub mod register;
pub mod schedule;
pub mod startup;
pub mod store;
pub mod sync;
pub mod tags;
pub mod telemetry;
