//! The Microsoft Graph emulator behind `entrasync graph-sim`: identity platform, Graph v1.0 directory
//! endpoints with their documented quirks, faults, and an admin API. See `docs/graph-sim.md`.

pub mod clock;
pub mod error;
