//! Database creation, migrations and schema rules against real Postgres.

use crate::support::TestDb;

#[tokio::test]
async fn database_is_created_and_migrations_apply_twice() {
    let db = TestDb::named();
    let settings = db.settings();
    entrasync::store::ensure_database_exists(&settings.database).await.expect("create");
    entrasync::store::ensure_database_exists(&settings.database).await.expect("create again is a no-op");
    let first = entrasync::store::migrate::run(&settings.database).await.expect("first run");
    assert!(first.contains(&1), "first run applies V1, got {first:?}");
    let second = entrasync::store::migrate::run(&settings.database).await.expect("second run");
    assert!(second.is_empty(), "second run applies nothing, got {second:?}");

    let client = db.pool().get().await.expect("connection");
    for table in ["tenants", "credential_profiles", "directory_objects", "group_members", "sync_cursors", "sync_runs"] {
        let row = client.query_one("SELECT to_regclass($1)::text", &[&table]).await.expect("query");
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(table));
    }
}

#[tokio::test]
async fn concurrent_migrations_apply_each_file_once() {
    let db = TestDb::named();
    let settings = db.settings();
    entrasync::store::ensure_database_exists(&settings.database).await.expect("create");
    let (a, b) = tokio::join!(
        entrasync::store::migrate::run(&settings.database),
        entrasync::store::migrate::run(&settings.database)
    );
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert_eq!(a.len() + b.len(), a.len().max(b.len()), "one runner applied everything: {a:?} {b:?}");
}

#[tokio::test]
async fn a_tenants_directory_and_cloud_cannot_change() {
    let db = TestDb::migrated().await;
    let client = db.pool().get().await.expect("connection");
    let id: i64 = client
        .query_one(
            "INSERT INTO tenants (name, entra_tenant_id, cloud) VALUES ('Contoso', gen_random_uuid(), 'global') RETURNING id",
            &[],
        )
        .await
        .expect("insert")
        .get(0);
    client.execute("UPDATE tenants SET name = 'Contoso EU' WHERE id = $1", &[&id]).await.expect("rename is fine");
    let err = client
        .execute("UPDATE tenants SET cloud = 'china' WHERE id = $1", &[&id])
        .await
        .expect_err("cloud is immutable");
    assert!(db_message(&err).contains("cannot change"), "{err:?}");
    let err = client
        .execute("UPDATE tenants SET entra_tenant_id = gen_random_uuid() WHERE id = $1", &[&id])
        .await
        .expect_err("tenant id is immutable");
    assert!(db_message(&err).contains("cannot change"), "{err:?}");
}

fn db_message(err: &tokio_postgres::Error) -> String {
    err.as_db_error().map(|e| e.message().to_owned()).unwrap_or_default()
}
