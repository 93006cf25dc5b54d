//! All integration tests, in one binary (one link instead of one per file).
//! Each module tests one capability against real Postgres, RabbitMQ and the Graph emulator over HTTP.

#[path = "../support/mod.rs"]
mod support;
