//! Helpers: an emulator with one tenant and one consented app, and clients pointed at it.

use std::sync::Arc;
use std::time::Duration;

use entrasync::graph::{
    AppCredentials, AssertionAlgorithm, CertificateCredential, DeltaPage, DeltaRequest, GraphClient,
    GraphClientOptions, GraphError, GraphTenant, RetryPolicy, TenantSize,
};
use entrasync::model::Cloud;
use futures::StreamExt;
use graph_sim::faults::{FaultKind, FaultRule, FaultTrigger};
use graph_sim::identity::NewApp;
use graph_sim::state::TenantSpec;
use graph_sim::{GraphSim, RunningSim, SimOptions};

use crate::support::{secret, test_rsa_key_pem};

pub struct SimTenant {
    pub sim: RunningSim,
    pub tenant_id: String,
    pub app_id: String,
    pub secret: String,
    pub certificate_pem: String,
}

/// An emulator with a tenant of `users` users, `groups` groups and `devices` devices, and an app with a
/// secret and a certificate, consented to `roles` in that tenant.
pub fn start(users: usize, groups: usize, devices: usize, roles: &[&str]) -> SimTenant {
    let sim = GraphSim::start(SimOptions::default()).expect("start emulator");
    let spec = TenantSpec { users, groups, devices, seed: Some(7), ..TenantSpec::default() };
    let tenant = sim.state().create_tenant(spec).expect("create tenant");
    let certificate_pem = self_signed_certificate();
    let app = sim
        .state()
        .identity
        .register_app(NewApp {
            secret: Some("correct-horse-battery-staple".to_owned()),
            certificate_pem: Some(certificate_pem.clone()),
            ..NewApp::default()
        })
        .expect("register app");
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    sim.state().identity.grant_consent(&tenant.tenant_id, &app.app_id, &roles).expect("consent");
    SimTenant {
        sim,
        tenant_id: tenant.tenant_id,
        app_id: app.app_id,
        secret: "correct-horse-battery-staple".to_owned(),
        certificate_pem,
    }
}

fn self_signed_certificate() -> String {
    let key = rcgen::KeyPair::from_pem(test_rsa_key_pem()).expect("test key");
    let params = rcgen::CertificateParams::new(vec!["entrasync-test".to_owned()]).expect("params");
    params.self_signed(&key).expect("certificate").pem()
}

impl SimTenant {
    pub fn cloud(&self) -> Cloud {
        Cloud::Custom { login_url: self.sim.base_url(), graph_url: self.sim.base_url() }
    }

    pub fn with_secret(&self, secret_text: &str) -> GraphTenant {
        self.tenant(AppCredentials::with_secret(self.app_id.clone(), secret(secret_text)))
    }

    pub fn secret_tenant(&self) -> GraphTenant {
        self.with_secret(&self.secret)
    }

    pub fn certificate_tenant(&self, algorithm: AssertionAlgorithm) -> GraphTenant {
        let credential = CertificateCredential::from_pem(&secret(test_rsa_key_pem()), &self.certificate_pem, algorithm)
            .expect("credential");
        self.tenant(AppCredentials::with_certificate(self.app_id.clone(), credential))
    }

    fn tenant(&self, credentials: AppCredentials) -> GraphTenant {
        GraphTenant {
            cloud: self.cloud(),
            tenant_id: self.tenant_id.clone(),
            credentials: Arc::new(credentials),
            size: TenantSize::Small,
        }
    }

    /// Injects `kind` into this tenant's requests whose path contains `path`, at most `times` times.
    pub fn fault(&self, kind: FaultKind, path: &str, times: u64) {
        self.sim
            .state()
            .add_fault(FaultRule {
                tenant: Some(self.tenant_id.clone()),
                kind,
                trigger: FaultTrigger::Always,
                path_contains: Some(path.to_owned()),
                limit: Some(times),
            })
            .expect("add fault");
    }

    /// Responses of this tenant with `status`, as the emulator counted them.
    pub fn responses(&self, status: u16) -> u64 {
        let counters = self.sim.state().tenant_counters(&self.tenant_id).expect("counters");
        counters.by_status.get(&status).copied().unwrap_or(0)
    }
}

/// A client with quick backoff, so tests of missing `Retry-After` take milliseconds.
pub fn quick_client() -> GraphClient {
    GraphClient::new(GraphClientOptions {
        retry: RetryPolicy {
            max_attempts: 6,
            max_total_wait: Duration::from_secs(30),
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(400),
        },
        ..GraphClientOptions::default()
    })
    .expect("client")
}

/// All pages of one round, or the first error.
pub async fn round(
    client: &GraphClient,
    tenant: GraphTenant,
    request: DeltaRequest,
) -> Result<Vec<DeltaPage>, GraphError> {
    let mut pages = client.delta_pages(tenant, request);
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        all.push(page?);
    }
    Ok(all)
}

/// Ids of upserted objects across pages.
pub fn upserted_ids(pages: &[DeltaPage]) -> std::collections::BTreeSet<String> {
    pages
        .iter()
        .flat_map(|p| p.items.iter())
        .filter(|i| matches!(i, entrasync::graph::DeltaItem::Upsert { .. }))
        .map(|i| i.id().to_owned())
        .collect()
}
