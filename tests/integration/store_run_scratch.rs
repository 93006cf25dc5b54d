//! A run's scratch rows (seen objects, seen memberships, seen chunks, pending deletions, changed objects)
//! go in one statement each way: a restarted listing forgets what it saw, a finished run forgets
//! everything, and neither touches another run's rows (issue 16, target 5: one round trip, not five).

use entrasync::store::{run_scratch, Pool};
use uuid::Uuid;

use crate::support::TestDb;

const TABLES: [&str; 5] = [
    "sync_run_seen_objects",
    "sync_run_seen_members",
    "sync_run_seen_chunks",
    "sync_run_pending_deletions",
    "sync_run_changed_objects",
];

async fn fill(pool: &Pool, run_id: Uuid) {
    let client = pool.get().await.expect("connection");
    let object = Uuid::new_v4();
    client
        .batch_execute(&format!(
            "INSERT INTO sync_run_seen_objects (run_id, object_id) VALUES ('{run_id}', '{object}');
             INSERT INTO sync_run_seen_members (run_id, group_id, member_id) VALUES ('{run_id}', '{object}', '{object}');
             INSERT INTO sync_run_seen_chunks (run_id, ids) VALUES ('{run_id}', '\\x00');
             INSERT INTO sync_run_pending_deletions (run_id, object_id, permanent, reason)
                 VALUES ('{run_id}', '{object}', false, 'test');
             INSERT INTO sync_run_changed_objects (run_id, object_id) VALUES ('{run_id}', '{object}');"
        ))
        .await
        .expect("scratch rows");
}

/// Rows of `run_id` in each scratch table, in the order of [`TABLES`].
async fn rows(pool: &Pool, run_id: Uuid) -> Vec<i64> {
    let client = pool.get().await.expect("connection");
    let mut counts = Vec::new();
    for table in TABLES {
        let sql = format!("SELECT count(*) FROM {table} WHERE run_id = $1");
        counts.push(client.query_one(&sql, &[&run_id]).await.expect("count").get(0));
    }
    counts
}

#[tokio::test]
async fn forgetting_and_clearing_a_run_empty_exactly_its_own_scratch_rows() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let (run, other) = (Uuid::new_v4(), Uuid::new_v4());
    fill(&pool, run).await;
    fill(&pool, other).await;
    assert_eq!(rows(&pool, run).await, [1, 1, 1, 1, 1]);

    let client = pool.get().await.expect("connection");
    run_scratch::forget_seen(&client, run).await.expect("forget seen");
    assert_eq!(rows(&pool, run).await, [0, 0, 0, 1, 1], "a restarted listing keeps staged deletions and changes");

    fill(&pool, run).await;
    run_scratch::clear(&client, run).await.expect("clear");
    assert_eq!(rows(&pool, run).await, [0, 0, 0, 0, 0], "a finished run leaves nothing in {TABLES:?}");
    assert_eq!(rows(&pool, other).await, [1, 1, 1, 1, 1], "another run's rows stay");
}
