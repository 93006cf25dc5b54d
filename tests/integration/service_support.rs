//! Helpers shared by the `service_*` tests: tenants, an in-process service, counting jobs.

use entrasync::actors::{Service, Shared};
use entrasync::config::Settings;
use entrasync::metrics::Metrics;
use entrasync::model::Cloud;
use entrasync::queue::Broker;
use entrasync::store::{tenants, Pool};

/// Registers `n` enabled tenants (global cloud, no credentials: enough for scheduling) and returns ids.
pub async fn create_tenants(pool: &Pool, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let tenant = tenants::NewTenant {
            name: format!("tenant {i}"),
            entra_tenant_id: uuid::Uuid::new_v4(),
            cloud: Cloud::Global,
            credential_profile_id: None,
            enabled: true,
            full_scan_next_run: true,
        };
        ids.push(
            tenants::create(pool, &tenant, &entrasync::store::audit::Actor::new("test"))
                .await
                .expect("create tenant")
                .id,
        );
    }
    ids
}

/// The actors of one instance, in this process.
pub fn start_service(settings: &Settings) -> (Service, Broker) {
    let (service, broker, _) = start_observed_service(settings);
    (service, broker)
}

/// [`start_service`], plus the instance's metrics (what its workers hold and have settled).
pub fn start_observed_service(settings: &Settings) -> (Service, Broker, Metrics) {
    let broker = Broker::start(&settings.amqp);
    let pool = entrasync::store::pool(&settings.database).expect("pool");
    let metrics = Metrics::new();
    let shared = Shared::new(pool, broker.clone(), metrics.clone(), settings.clone());
    (Service::start(shared).expect("service"), broker, metrics)
}

/// The emulator, a database, RabbitMQ names and an emulated app whose tenants entrasync can sync.
pub struct World {
    pub db: crate::support::TestDb,
    pub amqp: crate::support::TestAmqp,
    pub pool: Pool,
    pub sim: graph_sim::RunningSim,
    pub app: entrasync::demo::emulated::EmulatedApp,
    pub secrets_key: String,
}

impl World {
    pub async fn start() -> World {
        use base64::Engine;
        let db = crate::support::TestDb::migrated().await;
        let amqp = crate::support::TestAmqp::new();
        let pool = db.pool();
        let sim = graph_sim::GraphSim::start(Default::default()).expect("emulator");
        let secrets_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let secrets = entrasync::store::secret_box::SecretBox::from_setting(&crate::support::secret(&secrets_key))
            .expect("secrets key");
        let app = entrasync::demo::emulated::register_app(&sim, &pool, &secrets, "emulated app").await.expect("app");
        World { db, amqp, pool, sim, app, secrets_key }
    }

    /// A small generated tenant (pages of `page_size`) registered with entrasync.
    pub async fn tenant(&self, seed: u64, users: usize, page_size: usize) -> entrasync::demo::emulated::EmulatedTenant {
        let spec = graph_sim::state::TenantSpec {
            seed: Some(seed),
            users,
            groups: users / 5,
            devices: users / 2,
            ..Default::default()
        };
        entrasync::demo::emulated::add_tenant(
            &self.sim,
            &self.pool,
            &self.app,
            &format!("tenant {seed}"),
            spec,
            Some(page_size),
        )
        .await
        .expect("tenant")
    }

    /// Settings of an instance of this world, plus `extra` variables.
    pub fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        let mut vars = vec![
            ("ENTRASYNC_DATABASE_URL", self.db.url.as_str()),
            ("ENTRASYNC_AMQP_PREFIX", self.amqp.prefix.as_str()),
            ("ENTRASYNC_SECRETS_KEY", self.secrets_key.as_str()),
        ];
        vars.extend_from_slice(extra);
        crate::support::settings_with(&vars)
    }
}

/// A finished or running run as stored: (tenant, class, status, started, finished).
pub struct StoredRun {
    pub tenant_id: i64,
    pub class: String,
    pub status: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub error: Option<String>,
}

pub async fn stored_runs(pool: &Pool) -> Vec<StoredRun> {
    let client = pool.get().await.expect("connection");
    let rows = client
        .query(
            "SELECT tenant_id, object_class::text, status::text, started_at, finished_at, error FROM sync_runs
             ORDER BY tenant_id, object_class, started_at",
            &[],
        )
        .await
        .expect("runs");
    rows.iter()
        .map(|r| StoredRun {
            tenant_id: r.get(0),
            class: r.get(1),
            status: r.get(2),
            started_at: r.get(3),
            finished_at: r.get(4),
            error: r.get(5),
        })
        .collect()
}

/// Pairs of runs of the same (tenant, class) whose intervals overlap: must always be empty.
pub fn overlapping_runs(runs: &[StoredRun]) -> Vec<String> {
    let mut overlaps = Vec::new();
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            if a.tenant_id != b.tenant_id || a.class != b.class {
                continue;
            }
            let far_future = chrono::DateTime::<chrono::Utc>::MAX_UTC;
            let (a_end, b_end) = (a.finished_at.unwrap_or(far_future), b.finished_at.unwrap_or(far_future));
            if a.started_at < b_end && b.started_at < a_end {
                overlaps.push(format!(
                    "tenant {} {}: {:?}..{:?} and {:?}..{:?}",
                    a.tenant_id, a.class, a.started_at, a_end, b.started_at, b_end
                ));
            }
        }
    }
    overlaps
}

/// Live objects stored for a tenant, per class, in ObjectClass::ALL order.
pub async fn stored_counts(pool: &Pool, tenant_id: i64) -> Vec<u64> {
    let client = pool.get().await.expect("connection");
    let mut counts = Vec::new();
    for class in entrasync::model::ObjectClass::ALL {
        counts.push(entrasync::store::objects::live_count(&client, tenant_id, class).await.expect("count"));
    }
    counts
}

/// Live objects in the emulator's truth, per class.
pub fn true_counts(sim: &graph_sim::RunningSim, sim_tenant: &str) -> Vec<u64> {
    entrasync::model::ObjectClass::ALL
        .iter()
        .map(|class| sim.state().truth(sim_tenant, *class).expect("truth").objects.len() as u64)
        .collect()
}
