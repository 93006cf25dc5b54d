//! Store functions behind the operator API: tokens, audit, tenant overview and deletion, history pages, objects, consent requests.

use base64::Engine;
use chrono::{Duration, Utc};
use entrasync::model::{Cloud, ObjectClass, SyncMode};
use entrasync::store::api_tokens::{self, Role};
use entrasync::store::audit::{self, Actor, AuditQuery};
use entrasync::store::credentials::{self, CredentialMaterial, NewCredentialProfile};
use entrasync::store::history::{self, HistoryCursor, HistoryFilter};
use entrasync::store::secret_box::SecretBox;
use entrasync::store::tenants::{self, NewTenant, TenantChanges};
use entrasync::store::{consent, directory, held_deletions, schedule, Pool, StoreError};
use futures::TryStreamExt;
use uuid::Uuid;

use crate::support::{secret, TestDb};

const SECRET: &str = "s3cr3t-client-value-never-shown";

fn secrets(byte: u8) -> SecretBox {
    SecretBox::from_setting(&secret(&base64::engine::general_purpose::STANDARD.encode([byte; 32]))).unwrap()
}

fn actor() -> Actor {
    Actor::new("alice")
}

async fn profile(pool: &Pool, sb: &SecretBox, name: &str) -> i64 {
    let new = NewCredentialProfile {
        name: name.to_owned(),
        client_id: Uuid::new_v4(),
        material: CredentialMaterial::Secret(secret(SECRET)),
    };
    credentials::create(pool, sb, &new, &actor()).await.unwrap()
}

async fn tenant(pool: &Pool, name: &str, profile: Option<i64>) -> i64 {
    let new = NewTenant {
        name: name.to_owned(),
        entra_tenant_id: Uuid::new_v4(),
        cloud: Cloud::Global,
        credential_profile_id: profile,
        enabled: true,
        full_scan_next_run: false,
    };
    tenants::create(pool, &new, &actor()).await.unwrap().id
}

/// Inserts a finished run (test data, written directly).
async fn run(pool: &Pool, tenant: i64, class: &str, status: &str, minutes_ago: i64, error: Option<&str>) -> Uuid {
    let id = Uuid::new_v4();
    let client = pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO sync_runs (id, tenant_id, object_class, mode, trigger, status, started_at, error)
             VALUES ($1, $2, $3::text::object_class, 'delta', 'schedule', $4::text::run_status, $5, $6)",
            &[&id, &tenant, &class, &status, &(Utc::now() - Duration::minutes(minutes_ago)), &error],
        )
        .await
        .unwrap();
    id
}

async fn audit_of(pool: &Pool, target_type: &str, target_id: &str) -> Vec<audit::AuditEntry> {
    let query = AuditQuery {
        limit: 100,
        before_id: None,
        target_type: Some(target_type.to_owned()),
        target_id: Some(target_id.to_owned()),
    };
    audit::list(pool, &query).await.unwrap()
}

#[tokio::test]
async fn tokens_are_found_by_hash_revoked_touched_and_bootstrapped() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    assert!(!api_tokens::any_active_admin(&pool).await.unwrap());
    let viewer = api_tokens::create(&pool, "ci", Role::Viewer, &[1; 32], &actor()).await.unwrap();
    assert_eq!(viewer.role, Role::Viewer);
    let duplicate = api_tokens::create(&pool, "ci", Role::Admin, &[2; 32], &actor()).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
    assert_eq!(api_tokens::find_active_by_hash(&pool, &[1; 32]).await.unwrap().unwrap().id, viewer.id);
    assert!(api_tokens::find_active_by_hash(&pool, &[9; 32]).await.unwrap().is_none());

    api_tokens::touch(&pool, viewer.id).await.unwrap();
    let first = api_tokens::list(&pool).await.unwrap()[0].last_used_at.unwrap();
    api_tokens::touch(&pool, viewer.id).await.unwrap();
    assert_eq!(api_tokens::list(&pool).await.unwrap()[0].last_used_at, Some(first), "at most once a minute");

    assert!(api_tokens::revoke(&pool, viewer.id, &actor()).await.unwrap());
    assert!(!api_tokens::revoke(&pool, viewer.id, &actor()).await.unwrap());
    assert!(api_tokens::find_active_by_hash(&pool, &[1; 32]).await.unwrap().is_none());
    // The name is free again once revoked.
    api_tokens::create(&pool, "ci", Role::Viewer, &[3; 32], &actor()).await.unwrap();

    let boot = api_tokens::upsert_bootstrap(&pool, &[4; 32]).await.unwrap();
    assert_eq!((boot.name.as_str(), boot.role), ("bootstrap", Role::Admin));
    assert!(api_tokens::any_active_admin(&pool).await.unwrap());
    assert_eq!(api_tokens::upsert_bootstrap(&pool, &[4; 32]).await.unwrap().id, boot.id);
    let changed = api_tokens::upsert_bootstrap(&pool, &[5; 32]).await.unwrap();
    assert_eq!(changed.id, boot.id, "the bootstrap row takes the new hash");
    assert!(api_tokens::find_active_by_hash(&pool, &[4; 32]).await.unwrap().is_none());
    assert!(api_tokens::find_active_by_hash(&pool, &[5; 32]).await.unwrap().is_some());
    let entries = audit_of(&pool, "token", &boot.id.to_string()).await;
    assert_eq!(entries.len(), 2, "bootstrap audited on insert and on change only: {entries:?}");
    let revoked = audit_of(&pool, "token", &viewer.id.to_string()).await;
    assert_eq!(revoked[0].action, "token.revoke");
    assert_eq!(revoked[0].actor, "alice");
}

#[tokio::test]
async fn credential_changes_are_audited_without_secrets_and_delete_refuses_while_used() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let sb = secrets(7);
    let id = profile(&pool, &sb, "prod-app").await;
    let other = profile(&pool, &sb, "other").await;
    let renamed = credentials::rename(&pool, id, "prod", &actor()).await.unwrap().unwrap();
    assert_eq!(renamed.name, "prod");
    assert!(matches!(credentials::rename(&pool, id, "other", &actor()).await, Err(StoreError::Conflict(_))));
    assert!(credentials::rename(&pool, 999_999, "x", &actor()).await.unwrap().is_none());

    let rotated = credentials::replace_material(
        &pool,
        &sb,
        id,
        &CredentialMaterial::Secret(secret("rotated-secret-value")),
        &actor(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rotated.kind, "secret");
    let opened = credentials::get(&pool, &sb, id).await.unwrap().unwrap();
    assert!(
        matches!(opened.material, CredentialMaterial::Secret(s) if secrecy::ExposeSecret::expose_secret(&s) == "rotated-secret-value")
    );

    tenant(&pool, "Contoso", Some(id)).await;
    tenant(&pool, "Fabrikam", Some(id)).await;
    let summary = credentials::get_summary(&pool, id).await.unwrap().unwrap();
    assert_eq!(summary.tenant_count, 2);
    match credentials::delete(&pool, id, &actor()).await {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains("Contoso, Fabrikam") && message.contains("another profile"), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(credentials::delete(&pool, other, &actor()).await.unwrap());
    assert!(!credentials::delete(&pool, other, &actor()).await.unwrap());

    let entries = audit_of(&pool, "credential_profile", &id.to_string()).await;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["credential_profile.replace_material", "credential_profile.rename", "credential_profile.create"]
    );
    let all =
        serde_json::to_string(&audit::list(&pool, &AuditQuery { limit: 1000, ..AuditQuery::default() }).await.unwrap())
            .unwrap();
    assert!(!all.contains(SECRET) && !all.contains("rotated-secret-value"), "no secret in the audit log");
    assert!(all.contains("[redacted]"));
}

#[tokio::test]
async fn a_changed_secrets_key_is_a_clear_error_and_reencrypting_fixes_it() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let (old, new) = (secrets(1), secrets(2));
    let id = profile(&pool, &old, "app").await;
    match credentials::get(&pool, &new, id).await {
        Err(error @ StoreError::Undecryptable { .. }) => {
            let message = error.to_string();
            assert!(message.contains("\"app\"") && message.contains("reencrypt --old-key"), "{message}");
        }
        other => panic!("expected Undecryptable, got {:?}", other.map(|p| p.map(|p| p.id))),
    }
    assert_eq!(credentials::reencrypt_all(&pool, &old, &new).await.unwrap(), 1);
    assert!(credentials::get(&pool, &new, id).await.unwrap().is_some());
    assert_eq!(credentials::reencrypt_all(&pool, &old, &new).await.unwrap(), 0, "already re-encrypted");
    let stranger = secrets(3);
    assert!(matches!(
        credentials::reencrypt_all(&pool, &stranger, &secrets(4)).await,
        Err(StoreError::Undecryptable { .. })
    ));
}

#[tokio::test]
async fn tenant_update_block_reset_and_schedule() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let id = tenant(&pool, "Contoso", None).await;
    let changes =
        TenantChanges { name: Some("Contoso Ltd".into()), full_scan_next_run: Some(true), ..TenantChanges::default() };
    let updated = tenants::update(&pool, id, &changes, &actor()).await.unwrap().unwrap();
    assert_eq!((updated.name.as_str(), updated.full_scan_next_run), ("Contoso Ltd", true));
    assert!(tenants::update(&pool, 999_999, &changes, &actor()).await.unwrap().is_none());

    assert!(schedule::load(&pool, id).await.unwrap().unwrap().enabled);
    assert!(tenants::set_blocked(&pool, id, true, &actor()).await.unwrap());
    assert!(tenants::get(&pool, id).await.unwrap().unwrap().blocked);
    assert!(!schedule::load(&pool, id).await.unwrap().unwrap().enabled, "a blocked tenant is not scheduled");

    for _ in 0..5 {
        schedule::record_failure(&pool, id, ObjectClass::User, "boom", 5).await.unwrap();
    }
    assert!(tenants::get_overview(&pool, id).await.unwrap().unwrap().quarantined_at.is_some());
    assert!(tenants::reset(&pool, id, &actor()).await.unwrap());
    let after = tenants::get_overview(&pool, id).await.unwrap().unwrap();
    assert!(!after.tenant.blocked && after.quarantined_at.is_none() && after.quarantine_reason.is_none());
    let loaded = schedule::load(&pool, id).await.unwrap().unwrap();
    assert!(loaded.enabled);
    assert!(loaded.classes.iter().all(|c| c.consecutive_failures == 0 && c.last_failure_at.is_none()));
    assert!(!tenants::reset(&pool, 999_999, &actor()).await.unwrap());

    let actions: Vec<String> = audit_of(&pool, "tenant", &id.to_string()).await.into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["tenant.reset", "tenant.block", "tenant.update", "tenant.create"]);

    assert!(tenants::record_permissions(&pool, id, "granted", serde_json::json!({"users": "granted"})).await.unwrap());
    assert!(matches!(
        tenants::record_permissions(&pool, id, "bogus", serde_json::json!({})).await,
        Err(StoreError::Rejected(_))
    ));
    assert!(tenants::set_directory_info(&pool, id, Some("Contoso"), &["contoso.onmicrosoft.com".into()])
        .await
        .unwrap());
    assert!(tenants::record_consent(&pool, id, false, Some("access_denied"), &actor()).await.unwrap());
    let overview = tenants::get_overview(&pool, id).await.unwrap().unwrap();
    assert_eq!(overview.permission_status, "granted");
    assert_eq!(overview.verified_domains, ["contoso.onmicrosoft.com"]);
    assert_eq!(overview.consent_state.as_deref(), Some("refused"));
}

#[tokio::test]
async fn deleting_a_tenant_removes_everything_stored_for_it_and_only_that() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let (gone, kept) = (tenant(&pool, "Gone", None).await, tenant(&pool, "Kept", None).await);
    let client = pool.get().await.unwrap();
    for t in [gone, kept] {
        let group = Uuid::new_v4();
        client
            .execute(
                "INSERT INTO directory_objects (tenant_id, object_class, object_id, marker, attrs)
                 VALUES ($1, 'group', $2, 1, '{}')",
                &[&t, &group],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO group_members (tenant_id, group_id, member_id, member_class) VALUES ($1, $2, $3, 'user')",
                &[&t, &group, &Uuid::new_v4()],
            )
            .await
            .unwrap();
        let run_id = run(&pool, t, "group", "held", 1, None).await;
        client
            .execute("INSERT INTO sync_run_seen_objects (run_id, object_id) VALUES ($1, $2)", &[&run_id, &group])
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO held_deletions (tenant_id, object_class, run_id, object_id, permanent, reason)
                 VALUES ($1, 'group', $2, $3, true, 'gone')",
                &[&t, &run_id, &group],
            )
            .await
            .unwrap();
    }
    assert!(tenants::delete(&pool, gone, &actor()).await.unwrap());
    assert!(!tenants::delete(&pool, gone, &actor()).await.unwrap());
    assert!(tenants::was_deleted(&pool, gone).await.unwrap());
    assert!(!tenants::was_deleted(&pool, kept).await.unwrap());
    for table in ["directory_objects", "group_members", "sync_runs", "held_deletions", "sync_run_counts"] {
        let count = |t: i64| {
            let client = &client;
            async move {
                let row = client
                    .query_one(&format!("SELECT count(*) FROM {table} WHERE tenant_id = $1"), &[&t])
                    .await
                    .unwrap();
                row.get::<_, i64>(0)
            }
        };
        assert_eq!(count(gone).await, 0, "{table} of the deleted tenant");
        assert!(count(kept).await > 0, "{table} of the other tenant");
    }
    let scratch: i64 = client.query_one("SELECT count(*) FROM sync_run_seen_objects", &[]).await.unwrap().get(0);
    assert_eq!(scratch, 1, "only the other tenant's run scratch is left");
    assert_eq!(audit_of(&pool, "tenant", &gone.to_string()).await[0].action, "tenant.delete");
}

#[tokio::test]
async fn the_overview_shows_each_class_latest_run_and_the_worst_status() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let sb = secrets(1);
    let p = profile(&pool, &sb, "app").await;
    let b = tenant(&pool, "B tenant", Some(p)).await;
    let a = tenant(&pool, "A tenant", None).await;
    run(&pool, b, "user", "failed", 30, Some("old failure")).await;
    let user = run(&pool, b, "user", "success", 10, None).await;
    let group = run(&pool, b, "group", "warning", 5, None).await;
    run(&pool, b, "device", "running", 1, None).await;
    let list = tenants::list_overview(&pool).await.unwrap();
    assert_eq!(list.iter().map(|o| o.tenant.id).collect::<Vec<_>>(), [a, b], "by name");
    assert!(list[0].last_sync.status.is_none() && list[0].last_sync.classes.is_empty());
    let last = &list[1].last_sync;
    assert_eq!(last.status.as_deref(), Some("warning"), "warning beats running and success");
    assert_eq!(last.classes["user"].run_id, user);
    assert_eq!(last.classes["group"].run_id, group);
    assert_eq!(last.classes["device"].status, "running");
    assert_eq!(list[1].credential_profile_name.as_deref(), Some("app"));
    run(&pool, b, "group", "held", 0, None).await;
    let held = tenants::get_overview(&pool, b).await.unwrap().unwrap();
    assert_eq!(held.last_sync.status.as_deref(), Some("held"));
}

#[tokio::test]
async fn history_pages_by_keyset_with_filters_search_totals_and_a_stream() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let contoso = tenant(&pool, "Contoso", None).await;
    let fabrikam = tenant(&pool, "Fabrikam", None).await;
    for i in 0..30 {
        let (t, status, error) = match i % 3 {
            0 => (contoso, "success", None),
            1 => (fabrikam, "failed", Some("Graph said: Authorization_RequestDenied")),
            _ => (fabrikam, "success", None),
        };
        run(&pool, t, if i % 2 == 0 { "user" } else { "group" }, status, i, error).await;
    }
    let all = HistoryFilter::default();
    let first = history::page(&pool, &all, 12, None).await.unwrap();
    assert_eq!((first.items.len(), first.total, first.total_exact), (12, 30, true));
    let cursor = first.next.unwrap();
    assert_eq!(HistoryCursor::decode(&cursor.encode()), Some(cursor));
    assert!(HistoryCursor::decode("not a cursor").is_none());
    let second = history::page(&pool, &all, 12, Some(&cursor)).await.unwrap();
    let third = history::page(&pool, &all, 12, second.next.as_ref()).await.unwrap();
    assert_eq!(third.items.len(), 6);
    assert!(third.next.is_none());
    let keys: Vec<_> = [first.items, second.items, third.items].concat().iter().map(|r| (r.started_at, r.id)).collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats");

    let failed = HistoryFilter { status: Some("failed".into()), ..HistoryFilter::default() };
    let page = history::page(&pool, &failed, 50, None).await.unwrap();
    assert_eq!((page.items.len(), page.total), (10, 10));
    assert!(page.items.iter().all(|r| r.status == "failed" && r.tenant_name == "Fabrikam"));
    let users_of = HistoryFilter {
        tenant_id: Some(contoso),
        class: Some(ObjectClass::User),
        mode: Some(SyncMode::Delta),
        ..HistoryFilter::default()
    };
    assert_eq!(history::page(&pool, &users_of, 50, None).await.unwrap().total, 5);
    let recent = HistoryFilter { from: Some(Utc::now() - Duration::seconds(9 * 60 + 30)), ..HistoryFilter::default() };
    let recent = history::page(&pool, &recent, 50, None).await.unwrap();
    assert_eq!((recent.items.len(), recent.total, recent.total_exact), (10, 10, true));
    assert!(matches!(
        history::page(&pool, &HistoryFilter { status: Some("bogus".into()), ..HistoryFilter::default() }, 50, None)
            .await,
        Err(StoreError::Rejected(_))
    ));

    let search = |q: &str| HistoryFilter { q: Some(q.into()), ..HistoryFilter::default() };
    assert_eq!(history::page(&pool, &search("contoso"), 50, None).await.unwrap().total, 10, "tenant name");
    assert_eq!(history::page(&pool, &search("requestdenied"), 50, None).await.unwrap().total, 10, "error text");
    assert_eq!(history::page(&pool, &search("FAILED"), 50, None).await.unwrap().total, 10, "status");
    assert_eq!(
        history::page(&pool, &search("100%"), 50, None).await.unwrap().total,
        0,
        "pattern characters are literal"
    );
    let paged = history::page(&pool, &search("fabrikam"), 7, None).await.unwrap();
    let rest = history::page(&pool, &search("fabrikam"), 50, paged.next.as_ref()).await.unwrap();
    assert_eq!(paged.items.len() + rest.items.len(), 20);

    let streamed: Vec<_> = history::stream(pool.clone(), HistoryFilter::default()).try_collect().await.unwrap();
    assert_eq!(streamed.len(), 30);
    let streamed: Vec<_> = history::stream(pool.clone(), search("contoso")).try_collect().await.unwrap();
    assert_eq!(streamed.len(), 10);

    // The counters follow updates and deletes.
    pool.get()
        .await
        .unwrap()
        .execute("UPDATE sync_runs SET status = 'success' WHERE status = 'failed'", &[])
        .await
        .unwrap();
    assert_eq!(history::page(&pool, &failed, 50, None).await.unwrap().total, 0);
    tenants::delete(&pool, fabrikam, &actor()).await.unwrap();
    assert_eq!(history::page(&pool, &all, 50, None).await.unwrap().total, 10);
}

type Cells = Vec<(i64, String, String, String, i64)>;

/// `sync_run_counts` (its non-zero cells), and what a count of `sync_runs` by the same key gives.
async fn counters_and_count(client: &tokio_postgres::Client) -> (Cells, Cells) {
    let read = |sql: &'static str| async move {
        let rows = client.query(sql, &[]).await.unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect::<Cells>()
    };
    let kept = read(
        "SELECT tenant_id, object_class::text, status::text, mode::text, runs FROM sync_run_counts
         WHERE runs <> 0 ORDER BY 1, 2, 3, 4",
    )
    .await;
    let counted = read(
        "SELECT tenant_id, object_class::text, status::text, mode::text, count(*) FROM sync_runs
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
    )
    .await;
    (kept, counted)
}

#[tokio::test]
async fn the_run_counters_move_only_when_a_run_changes_cell() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let contoso = tenant(&pool, "Contoso", None).await;
    let client = pool.get().await.unwrap();
    let mut runs = Vec::new();
    for class in ["user", "group", "device", "user"] {
        runs.push(run(&pool, contoso, class, "running", 1, None).await);
    }
    let update = |sql: &'static str, id: Uuid| {
        let client = &client;
        async move { client.execute(sql, &[&id]).await.unwrap() }
    };
    // A run's end, its progress (no cell changes), a statement that updates nothing, a change of mode,
    // several runs in one statement, an error that appears, a run reopened.
    update("UPDATE sync_runs SET status = 'success', finished_at = now() WHERE id = $1", runs[0]).await;
    update("UPDATE sync_runs SET total = 7, updated_at = now() WHERE id = $1", runs[1]).await;
    assert_eq!(update("UPDATE sync_runs SET status = 'failed' WHERE id = $1 AND false", runs[1]).await, 0);
    update("UPDATE sync_runs SET mode = 'full' WHERE id = $1", runs[1]).await;
    let closed = client
        .execute("UPDATE sync_runs SET status = 'failed', error = 'interrupted' WHERE status = 'running'", &[])
        .await
        .unwrap();
    assert_eq!(closed, 3);
    update("UPDATE sync_runs SET status = 'held', mode = 'delta' WHERE id = $1", runs[3]).await;
    // A resumed run is reopened by its start's upsert (runs::insert_started).
    update(
        "INSERT INTO sync_runs (id, tenant_id, object_class, mode, trigger, status, started_at)
         SELECT id, tenant_id, object_class, mode, trigger, 'running', now() FROM sync_runs WHERE id = $1
         ON CONFLICT (id) DO UPDATE SET status = 'running', finished_at = NULL, error = NULL",
        runs[2],
    )
    .await;
    let (kept, counted) = counters_and_count(&client).await;
    assert_eq!(kept, counted, "the counters disagree with the runs");
    let total = |status: &str| HistoryFilter { status: Some(status.into()), ..HistoryFilter::default() };
    assert_eq!(history::page(&pool, &total("failed"), 50, None).await.unwrap().total, 1);
    assert_eq!(history::page(&pool, &total("running"), 50, None).await.unwrap().total, 1);
    let fulls = HistoryFilter { mode: Some(SyncMode::Full), ..HistoryFilter::default() };
    assert_eq!(history::page(&pool, &fulls, 50, None).await.unwrap().total, 1);
    assert_eq!(history::page(&pool, &HistoryFilter::default(), 50, None).await.unwrap().total, 4);
}

#[tokio::test]
async fn objects_are_browsed_searched_and_read_with_memberships() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let t = tenant(&pool, "Contoso", None).await;
    let client = pool.get().await.unwrap();
    let mut users: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    users.sort();
    for (i, id) in users.iter().enumerate() {
        let attrs =
            serde_json::json!({"displayName": format!("User {i}"), "userPrincipalName": format!("u{i}@contoso.com")});
        let deleted = (i == 4).then(Utc::now);
        client
            .execute(
                "INSERT INTO directory_objects (tenant_id, object_class, object_id, marker, attrs, deleted_at)
                 VALUES ($1, 'user', $2, 1, $3, $4)",
                &[&t, id, &attrs, &deleted],
            )
            .await
            .unwrap();
    }
    let group = Uuid::new_v4();
    client
        .execute(
            "INSERT INTO directory_objects (tenant_id, object_class, object_id, marker, attrs)
             VALUES ($1, 'group', $2, 1, '{\"displayName\": \"Admins\", \"mail\": \"admins@contoso.com\"}')",
            &[&t, &group],
        )
        .await
        .unwrap();
    for user in &users[..3] {
        client
            .execute(
                "INSERT INTO group_members (tenant_id, group_id, member_id, member_class) VALUES ($1, $2, $3, 'user')",
                &[&t, &group, user],
            )
            .await
            .unwrap();
    }
    let page = directory::list_objects(&pool, t, ObjectClass::User, None, false, 2, None).await.unwrap();
    assert_eq!(page.iter().map(|o| o.object_id).collect::<Vec<_>>(), users[..2]);
    assert_eq!(page[0].principal.as_deref(), Some("u0@contoso.com"));
    let rest = directory::list_objects(&pool, t, ObjectClass::User, None, false, 10, Some(users[1])).await.unwrap();
    assert_eq!(rest.len(), 2, "the deleted one is left out");
    assert_eq!(directory::list_objects(&pool, t, ObjectClass::User, None, true, 10, None).await.unwrap().len(), 5);
    let found =
        directory::list_objects(&pool, t, ObjectClass::User, Some("U3@CONTOSO"), false, 10, None).await.unwrap();
    assert_eq!(found.iter().map(|o| o.object_id).collect::<Vec<_>>(), [users[3]]);

    let detail = directory::get_object(&pool, t, ObjectClass::Group, group).await.unwrap().unwrap();
    assert_eq!(detail.members_count, Some(3));
    assert_eq!(detail.members_first.len(), 3);
    let user = directory::get_object(&pool, t, ObjectClass::User, users[0]).await.unwrap().unwrap();
    assert_eq!(user.member_of, [group]);
    assert_eq!(user.members_count, None);
    assert!(directory::get_object(&pool, t, ObjectClass::User, Uuid::new_v4()).await.unwrap().is_none());
}

#[tokio::test]
async fn held_summary_and_single_use_consent() {
    let db = TestDb::migrated().await;
    let pool = db.pool();
    let sb = secrets(1);
    let p = profile(&pool, &sb, "app").await;
    let t = tenant(&pool, "Contoso", Some(p)).await;
    let run_id = run(&pool, t, "user", "held", 1, None).await;
    let client = pool.get().await.unwrap();
    for _ in 0..25 {
        client
            .execute(
                "INSERT INTO held_deletions (tenant_id, object_class, run_id, object_id, permanent, reason)
                 VALUES ($1, 'user', $2, $3, true, 'gone')",
                &[&t, &run_id, &Uuid::new_v4()],
            )
            .await
            .unwrap();
    }
    let held = held_deletions::summary(&pool, t).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].run_id, held[0].class, held[0].count, held[0].sample.len()),
        (run_id, ObjectClass::User, 25, 20)
    );

    let state = "a-state-value-long-enough";
    consent::create(&pool, state, p, None, "global", &actor()).await.unwrap();
    let taken = consent::take(&pool, state).await.unwrap().unwrap();
    assert_eq!((taken.credential_profile_id, taken.tenant_id, taken.cloud.as_str()), (p, None, "global"));
    assert!(consent::take(&pool, state).await.unwrap().is_none(), "single use");
    assert!(consent::take(&pool, "unknown-state-value-xx").await.unwrap().is_none());
    let old = "an-old-state-value-xxxx";
    consent::create(&pool, old, p, Some(t), "global", &actor()).await.unwrap();
    client
        .execute("UPDATE consent_requests SET created_at = now() - interval '2 hours' WHERE state = $1", &[&old])
        .await
        .unwrap();
    assert!(consent::take(&pool, old).await.unwrap().is_none(), "expired after an hour");
}
