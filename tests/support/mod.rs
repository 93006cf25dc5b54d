//! Test harness: per-test databases, RabbitMQ names, app spawning.
