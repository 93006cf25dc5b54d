//! All integration tests, in one binary (one link instead of one per file).
//! Each module tests one capability against real Postgres, RabbitMQ and the Graph emulator over HTTP.

// In tests a panic is a failed assertion, a print is a diagnostic, and dropping the result of closing a
// connection after the assertions is deliberate; library code is held to the workspace lints.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod api_mappings;
mod api_secrets;
mod api_store;
mod api_tags;
mod api_v1;
mod bench_events;
mod bench_fleet_budget;
mod bench_fleet_smoke;
mod bench_smoke;
mod change_events;
mod change_events_rebuild;
mod change_events_relay;
mod chaos_smoke;
mod cli_first_contact;
mod cli_mapping;
mod console_browser;
mod deploy_manifests;
mod foundation_queue;
mod foundation_service;
mod foundation_store;
mod graph_client;
mod graph_probe;
mod graph_sim_admin;
mod graph_sim_bench;
mod graph_sim_delta;
mod graph_sim_faults;
mod graph_sim_groups;
mod graph_sim_harness;
mod graph_sim_identity;
mod graph_sim_list;
mod hostile_input;
mod mapping_policy;
mod mapping_remap;
mod mapping_scope;
mod metrics_wiring;
mod nested_membership;
mod observability;
mod postgres_tls;
mod reliability_hangs;
mod security_controls;
mod serve_roles;
mod service_admin_jobs;
mod service_fairness;
mod service_jobs;
mod service_leases;
mod service_liveness;
mod service_outage;
mod service_pika;
mod service_scale;
mod service_schedule;
mod service_supervision;
mod service_support;
mod service_worker;
mod store_run_scratch;
mod store_run_start;
mod store_sessions;
#[path = "../support/mod.rs"]
mod support;
mod sync_convergence;
mod sync_faults;
mod sync_guards;
mod sync_membership;
mod sync_replays;
mod sync_rescan;
mod sync_resume;
mod sync_store;
mod sync_support;
mod tags_lifecycle;
