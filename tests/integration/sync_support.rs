//! Helpers of the sync tests: one emulator and one database shared by a test's tenants, a store
//! tenant per emulator tenant, rounds with the Postgres recorder, convergence checks against the
//! emulator's truth, and an exact count of row writes (row versions by `xmin`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use entrasync::graph::{
    default_select, AppCredentials, AssertionAlgorithm, CertificateCredential, GraphClient, GraphClientOptions,
    GraphTenant, RequestPriority, RetryPolicy, TenantSize,
};
use entrasync::model::{Cloud, ObjectClass, Trigger};
use entrasync::store::tenants::{self, NewTenant};
use entrasync::store::{members, objects, Pool};
use entrasync::sync::{
    run_round, DeletionGuard, PassThrough, PgRunRecorder, RecorderError, RoundDeps, RoundReport, RoundRequest,
    RunFinished, RunProgress, RunRecorder, RunStarted, SyncError,
};
use graph_sim::identity::NewApp;
use graph_sim::mutate::{MutationBatch, MutationSummary};
use graph_sim::settings::SettingsPatch;
use graph_sim::state::TenantSpec;
use graph_sim::{GraphSim, RunningSim, SimOptions};
use uuid::Uuid;

use crate::support::{secret, test_rsa_key_pem, TestDb};

pub const SECRET: &str = "sync-test-secret";
pub const READ_ROLES: &[&str] = &["User.Read.All", "GroupMember.Read.All", "Device.Read.All"];

/// A guard that never holds: convergence tests delete freely.
pub const NO_GUARD: DeletionGuard = DeletionGuard { max_deletions: u64::MAX, max_percent: 100 };

/// The emulator, the database and an app registration shared by the tenants of one test.
pub struct SyncWorld {
    #[allow(dead_code)] // keeps the database alive for the test
    pub db: TestDb,
    pub pool: Pool,
    pub sim: RunningSim,
    pub app_id: String,
    /// Registered with the app beside its secret.
    pub certificate_pem: String,
    pub graph: GraphClient,
    pub recorder: PgRunRecorder,
}

/// One tenant in both the emulator and the store.
pub struct SyncTenant {
    pub sim_tenant: String,
    pub tenant_id: i64,
    pub graph_tenant: GraphTenant,
}

impl SyncWorld {
    pub async fn start() -> SyncWorld {
        let db = TestDb::migrated().await;
        let pool = db.pool();
        let sim = GraphSim::start(SimOptions::default()).expect("start emulator");
        let certificate_pem = test_certificate();
        let app = sim
            .state()
            .identity
            .register_app(NewApp {
                secret: Some(SECRET.to_owned()),
                certificate_pem: Some(certificate_pem.clone()),
                ..NewApp::default()
            })
            .expect("register app");
        let graph = GraphClient::new(GraphClientOptions {
            retry: RetryPolicy {
                max_attempts: 8,
                max_total_wait: Duration::from_secs(60),
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
            },
            ..GraphClientOptions::default()
        })
        .expect("graph client");
        let recorder = PgRunRecorder::new(pool.clone());
        SyncWorld { db, pool, sim, app_id: app.app_id, certificate_pem, graph, recorder }
    }

    /// An emulator tenant generated from `seed`, consented, with small pages, and its store tenant.
    pub async fn tenant(&self, spec: TenantSpec, page_size: usize) -> SyncTenant {
        let state = self.sim.state();
        let info = state.create_tenant(spec).expect("create tenant");
        let roles: Vec<String> = READ_ROLES.iter().map(|r| (*r).to_owned()).collect();
        state.identity.grant_consent(&info.tenant_id, &self.app_id, &roles).expect("consent");
        state
            .update_settings(&info.tenant_id, &SettingsPatch { page_size: Some(page_size), ..SettingsPatch::default() })
            .expect("settings");
        let cloud = Cloud::Custom { login_url: self.sim.base_url(), graph_url: self.sim.base_url() };
        let stored = tenants::create(
            &self.pool,
            &NewTenant {
                name: format!("tenant {}", info.seed),
                entra_tenant_id: Uuid::parse_str(&info.tenant_id).expect("tenant GUID"),
                cloud: cloud.clone(),
                credential_profile_id: None,
                enabled: true,
                full_scan_next_run: true,
            },
            &entrasync::store::audit::Actor::new("test"),
        )
        .await
        .expect("store tenant");
        let graph_tenant = GraphTenant {
            cloud,
            tenant_id: info.tenant_id.clone(),
            credentials: Arc::new(AppCredentials::with_secret(self.app_id.clone(), secret(SECRET))),
            size: TenantSize::Small,
        };
        SyncTenant { sim_tenant: info.tenant_id, tenant_id: stored.id, graph_tenant }
    }

    /// The same tenant, signing in with the app's certificate instead of its secret.
    pub fn certificate_tenant(&self, tenant: &SyncTenant) -> GraphTenant {
        let credential = CertificateCredential::from_pem(
            &secret(test_rsa_key_pem()),
            &self.certificate_pem,
            AssertionAlgorithm::Rs256,
        )
        .expect("certificate credential");
        GraphTenant {
            credentials: Arc::new(AppCredentials::with_certificate(self.app_id.clone(), credential)),
            ..tenant.graph_tenant.clone()
        }
    }

    pub fn request(&self, tenant: &SyncTenant, class: ObjectClass) -> RoundRequest {
        RoundRequest {
            tenant_id: tenant.tenant_id,
            graph_tenant: tenant.graph_tenant.clone(),
            class,
            trigger: Trigger::Manual,
            force_full: false,
            guard: NO_GUARD,
            priority: RequestPriority::Normal,
            instance_id: Some("test".to_owned()),
            // Every page its own transaction, so tests can stop a round between any two pages.
            batch_objects: 1,
            job_id: None,
        }
    }

    pub async fn try_round(&self, request: &RoundRequest) -> Result<RoundReport, SyncError> {
        let deps = RoundDeps {
            pool: &self.pool,
            graph: &self.graph,
            policy: std::sync::Arc::new(PassThrough),
            recorder: &self.recorder,
        };
        run_round(&deps, request).await
    }

    pub async fn round(&self, tenant: &SyncTenant, class: ObjectClass) -> RoundReport {
        self.try_round(&self.request(tenant, class)).await.expect("round")
    }

    /// Applies the emulator's seeded batch of 1,000 random mutations to the tenant's directory.
    pub fn mutate(&self, tenant: &SyncTenant, seed: u64) -> MutationSummary {
        self.sim.state().random_mutations(&tenant.sim_tenant, &MutationBatch { seed, count: 1_000 }).expect("mutate")
    }

    /// Every class, users first (a permanently deleted user leaves its groups).
    pub async fn round_all(&self, tenant: &SyncTenant) -> Vec<RoundReport> {
        let mut reports = Vec::new();
        for class in ObjectClass::ALL {
            reports.push(self.round(tenant, class).await);
        }
        reports
    }

    /// Stored objects, soft deletions and memberships equal the emulator's truth. `soft_exact`: the
    /// store knows exactly which objects are soft-deleted (false after a full listing replaced a
    /// delta round: a listing cannot tell soft from permanent deletion, so only "not live" is checked).
    pub async fn assert_converged(&self, tenant: &SyncTenant, class: ObjectClass, soft_exact: bool) {
        let truth = self.sim.state().truth(&tenant.sim_tenant, class).expect("truth");
        let client = self.pool.get().await.expect("connection");
        let stored = objects::list(&client, tenant.tenant_id, class).await.expect("stored objects");
        let selected: BTreeSet<&str> =
            default_select(class).iter().copied().filter(|p| *p != "id" && *p != "members").collect();

        let live: BTreeMap<String, serde_json::Value> =
            stored.iter().filter(|o| !o.deleted).map(|o| (o.object_id.to_string(), o.attrs.clone())).collect();
        let true_live: BTreeSet<&String> = truth.objects.keys().collect();
        let stored_live: BTreeSet<&String> = live.keys().collect();
        assert_eq!(stored_live, true_live, "{class}: live objects differ from the emulator's");
        for (id, attrs) in &truth.objects {
            let expected: serde_json::Map<String, serde_json::Value> = attrs
                .iter()
                .filter(|(k, v)| selected.contains(k.as_str()) && !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(live[id], serde_json::Value::Object(expected), "{class} {id}: attributes differ");
        }

        let soft: BTreeSet<String> = stored.iter().filter(|o| o.deleted).map(|o| o.object_id.to_string()).collect();
        let true_soft: BTreeSet<String> = truth.soft_deleted.iter().cloned().collect();
        if soft_exact {
            assert_eq!(soft, true_soft, "{class}: soft-deleted objects differ from the emulator's");
        } else {
            assert!(
                soft.is_disjoint(&true_live.iter().map(|s| (*s).clone()).collect()),
                "{class}: a live object is deleted"
            );
        }

        if class == ObjectClass::Group {
            let stored_members = members::list(&client, tenant.tenant_id).await.expect("memberships");
            let mut by_group: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (group, member) in stored_members {
                by_group.entry(group.to_string()).or_default().insert(member.to_string());
            }
            for (group, true_members) in &truth.memberships {
                let expected: BTreeSet<String> = true_members.iter().cloned().collect();
                let actual = by_group.remove(group).unwrap_or_default();
                assert_eq!(actual.len(), expected.len(), "group {group}: member count");
                assert_eq!(actual, expected, "group {group}: members differ");
            }
            // What is left belongs to groups that are not live: only soft-deleted groups keep members.
            for group in by_group.keys() {
                assert!(soft.contains(group) || true_soft.contains(group), "group {group} is gone but keeps members");
            }
        }
    }

    /// Row versions of a tenant's objects and memberships: any insert, update or delete changes the map.
    pub async fn row_versions(&self, tenant: &SyncTenant) -> BTreeMap<String, String> {
        let client = self.pool.get().await.expect("connection");
        let rows = client
            .query(
                "SELECT 'o:' || object_id::text, xmin::text FROM directory_objects WHERE tenant_id = $1 \
                 UNION ALL \
                 SELECT 'm:' || group_id::text || ':' || member_id::text, xmin::text FROM group_members WHERE tenant_id = $1",
                &[&tenant.tenant_id],
            )
            .await
            .expect("row versions");
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }
}

/// Rows inserted, updated or deleted between two snapshots of [`SyncWorld::row_versions`].
pub fn row_writes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> usize {
    let changed_or_removed = before.iter().filter(|(k, v)| after.get(*k) != Some(*v)).count();
    let added = after.keys().filter(|k| !before.contains_key(*k)).count();
    changed_or_removed + added
}

/// The run's generated test RSA key in a self-signed certificate.
fn test_certificate() -> String {
    let key = rcgen::KeyPair::from_pem(test_rsa_key_pem()).expect("test key");
    let params = rcgen::CertificateParams::new(vec!["entrasync-sync-test".to_owned()]).expect("params");
    params.self_signed(&key).expect("certificate").pem()
}

pub fn spec(seed: u64, users: usize, groups: usize, devices: usize) -> TenantSpec {
    TenantSpec { seed: Some(seed), users, groups, devices, ..TenantSpec::default() }
}

/// Records like Postgres, and after the `stop_after`-th committed batch stops the round where it stands
/// (`reached` is notified): a worker that dies mid-round, for the resume tests.
pub(crate) struct StopAfterBatch {
    inner: PgRunRecorder,
    stop_after: u64,
    batches: std::sync::atomic::AtomicU64,
    pub(crate) reached: tokio::sync::Notify,
}

impl StopAfterBatch {
    pub(crate) fn new(inner: PgRunRecorder, stop_after: u64) -> Self {
        Self { inner, stop_after, batches: Default::default(), reached: tokio::sync::Notify::new() }
    }
}

impl RunRecorder for StopAfterBatch {
    async fn started(&self, event: &RunStarted) -> Result<(), RecorderError> {
        self.inner.started(event).await
    }

    async fn progress(&self, event: &RunProgress) -> Result<(), RecorderError> {
        self.inner.progress(event).await?;
        if self.batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == self.stop_after {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn finished(&self, event: &RunFinished) -> Result<(), RecorderError> {
        self.inner.finished(event).await
    }
}
