//! `serve.roles` decides what an instance serves over HTTP: every instance answers its probes and
//! exports its own series; only the `api` role reads and exports the fleet-wide state (tenants,
//! freshness, queue depths), so a fleet of workers does not repeat that read once per pod.

use entrasync::model::Cloud;
use entrasync::store::tenants::{self, NewTenant};
use uuid::Uuid;

use crate::observability::sample;
use crate::support::app::spawn_app;
use crate::support::{settings_with, TestAmqp, TestDb};

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn only_the_api_role_serves_the_fleet_view() {
    let db = TestDb::migrated().await;
    let amqp = TestAmqp::new();
    let tenant = NewTenant {
        name: "fleet view".to_owned(),
        entra_tenant_id: Uuid::new_v4(),
        cloud: Cloud::Global,
        credential_profile_id: None,
        enabled: false,
        full_scan_next_run: true,
    };
    tenants::create(&db.pool(), &tenant, &entrasync::store::audit::Actor::new("test")).await.expect("tenant");

    for (roles, fleet) in [("api", true), ("scheduler", false)] {
        let settings = settings_with(&[
            ("ENTRASYNC_DATABASE_URL", &db.url),
            ("ENTRASYNC_AMQP_PREFIX", &amqp.prefix),
            ("ENTRASYNC_SERVE_ROLES", roles),
        ]);
        let app = spawn_app(&settings).await;
        let (status, _) = get(&format!("{}/healthz", app.address)).await;
        assert_eq!(status, 200, "expected /healthz to answer 200 with roles={roles}");
        let (status, text) = get(&format!("{}/metrics", app.address)).await;
        assert_eq!(status, 200, "expected /metrics to answer 200 with roles={roles}");
        assert!(
            text.contains("entrasync_build_info"),
            "expected the instance's own series with roles={roles}:\n{text}"
        );
        let tenant = sample(&text, "entrasync_tenant_info", &[("name", "fleet view")]);
        let expected = fleet.then_some(1.0);
        assert_eq!(tenant, expected, "expected the tenant's series only from the api role (roles={roles}):\n{text}");
        app.handle.stop(true).await;
    }
}
