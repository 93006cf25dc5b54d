//! The Microsoft Graph emulator behind `entrasync graph-sim`: identity platform, Graph v1.0 directory
//! endpoints with their documented quirks, faults, and an admin API. See `docs/graph-sim.md`.

pub mod clock;
pub mod error;
pub mod identity;
pub mod tls;

pub mod bench;
mod body;
pub mod cli;
pub mod clouds;
pub mod counters;
pub mod delta;
pub mod directory;
pub mod faults;
pub mod generate;
pub mod ids;
pub mod listing;
pub mod membership;
pub mod mutate;
pub mod props;
pub mod query;
mod rng;
pub mod routes;
pub mod server;
pub mod settings;
pub mod state;
pub mod synth;
pub mod throttle;
pub mod token;
mod words;

pub use server::{GraphSim, RunningSim, SimOptions, StartError};
pub use state::SimState;
