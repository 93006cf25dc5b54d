//! The Graph client against the Graph emulator over real HTTP, and its rate budget against real Postgres.

mod auth;
mod budget;
mod delta;
mod retries;
pub mod sim;
