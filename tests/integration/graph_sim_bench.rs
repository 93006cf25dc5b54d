//! Graph emulator throughput (a benchmark, not a test; run in release):
//! `cargo test --release --test integration graph_sim_bench -- --ignored --nocapture`

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release with --ignored"]
async fn users_delta_walk_of_a_million_users() {
    let report = graph_sim::bench::run_users_walk(1_000_000, 2).await.expect("bench");
    eprintln!(
        "users={} generate={:.2}s walk={:.2}s pages={} objects={} objects_per_s={:.0} MB={:.1} directory_bytes_per_user={:.1}",
        report.users,
        report.generate.as_secs_f64(),
        report.walk.as_secs_f64(),
        report.pages,
        report.objects,
        report.objects_per_second(),
        report.bytes as f64 / 1e6,
        report.directory_bytes as f64 / report.users as f64
    );
    assert_eq!(report.objects, 1_000_000, "expected the walk to serve every one of the million users");
}
