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

#[tokio::test]
async fn credentials_are_encrypted_at_rest_and_tenants_start_with_a_full_scan() {
    use base64::Engine;
    use entrasync::model::Cloud;
    use entrasync::store::credentials::{self, CredentialMaterial, NewCredentialProfile};
    use entrasync::store::secret_box::SecretBox;
    use entrasync::store::tenants::{self, NewTenant};
    use secrecy::{ExposeSecret, SecretString};

    let db = TestDb::migrated().await;
    let pool = db.pool();
    let key = SecretString::from(base64::engine::general_purpose::STANDARD.encode([42u8; 32]));
    let secrets = SecretBox::from_setting(&key).expect("key");
    let profile = NewCredentialProfile {
        name: "contoso-app".into(),
        client_id: uuid::Uuid::new_v4(),
        material: CredentialMaterial::Secret(SecretString::from("very-secret-value".to_owned())),
    };
    let id = credentials::create(&pool, &secrets, &profile, &entrasync::store::audit::Actor::new("test"))
        .await
        .expect("create profile");

    let client = pool.get().await.expect("connection");
    let raw: Vec<u8> = client
        .query_one("SELECT secret_ciphertext FROM credential_profiles WHERE id = $1", &[&id])
        .await
        .expect("row")
        .get(0);
    assert!(!raw.windows(11).any(|w| w == b"very-secret"), "plaintext must not reach the table");
    let stored = credentials::get(&pool, &secrets, id).await.expect("get").expect("exists");
    match stored.material {
        CredentialMaterial::Secret(s) => {
            assert_eq!(
                s.expose_secret(),
                "very-secret-value",
                "expected the stored secret to decrypt to what was saved"
            );
        }
        CredentialMaterial::Certificate { .. } => panic!("stored as a secret"),
    }
    let listed = credentials::list(&pool).await.expect("list");
    assert_eq!(listed.len(), 1, "expected exactly the one profile created");
    let listed_json = serde_json::to_string(&listed).unwrap();
    assert!(!listed_json.contains("very-secret"), "expected the listing to carry no secret: {listed_json}");

    let duplicate = credentials::create(&pool, &secrets, &profile, &entrasync::store::audit::Actor::new("test")).await;
    assert!(matches!(duplicate, Err(entrasync::store::StoreError::Conflict(_))), "names are unique");

    let tenant = tenants::create(
        &pool,
        &NewTenant {
            name: "Contoso".into(),
            entra_tenant_id: uuid::Uuid::new_v4(),
            cloud: Cloud::Custom { login_url: "http://127.0.0.1:1".into(), graph_url: "http://127.0.0.1:1".into() },
            credential_profile_id: Some(id),
            enabled: true,
            full_scan_next_run: true,
        },
        &entrasync::store::audit::Actor::new("test"),
    )
    .await
    .expect("create tenant");
    assert!(tenant.full_scan_next_run, "expected a new tenant to start with a full scan");
    let found = tenants::find_by_entra_id(&pool, tenant.entra_tenant_id).await.expect("find").expect("exists");
    assert_eq!(found.cloud, tenant.cloud, "expected the custom cloud's URLs to round-trip through the store");
}
