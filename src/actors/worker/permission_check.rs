//! One `permission_check` delivery: test the tenant's connection with its stored credentials, store the
//! permission status, and lift a quarantine that missing consent caused once everything is granted.
//! Plain async code, settled by the same consume loop as sync jobs.

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::job::{is_permanent, patiently, unknown_tenant, Settlement};
use super::WorkerDeps;
use crate::access::graph_tenant;
use crate::graph::test_connection;
use crate::model::PermissionStatus;
use crate::queue::{Job, PermissionCheckJob};
use crate::store::audit::Actor;
use crate::store::{admin_jobs, schedule, tenants};

/// Handles one message of the checks queue.
pub async fn process(deps: &WorkerDeps, body: &[u8], stop: &CancellationToken) -> Settlement {
    let job = match Job::from_bytes(body) {
        Ok(Job::PermissionCheck(job)) => job,
        Ok(other) => {
            return Settlement::DeadLetter(format!(
                "a {} job arrived on the checks queue; publish it with routing key {}",
                other.kind(),
                other.routing_key()
            ))
        }
        Err(error) => return Settlement::DeadLetter(error.to_string()),
    };
    let span = tracing::info_span!("permission_check", job = %job.job_id, entra_tenant = %job.tenant, tenant = tracing::field::Empty);
    check(deps, &job, stop).instrument(span).await
}

async fn check(deps: &WorkerDeps, job: &PermissionCheckJob, stop: &CancellationToken) -> Settlement {
    let pool = &deps.shared.pool;
    let Some(found) = patiently(stop, || tenants::find_by_entra_id(pool, job.tenant)).await else {
        return Settlement::Requeue;
    };
    let Some(tenant) = found else { return unknown_tenant(pool, job.tenant, stop).await };
    tracing::Span::current().record("tenant", tenant.id);
    // Blocked means "leave this directory alone"; a disabled tenant is still checked, so an operator
    // can see consent work before enabling it.
    if tenant.blocked {
        tracing::info!("tenant blocked; permission check dropped");
        return Settlement::Ack;
    }
    let (status, details) = match graph_tenant(pool, deps.secrets.as_ref(), &tenant).await {
        Ok(graph_tenant) => {
            let report = tokio::select! {
                report = test_connection(&deps.graph, &graph_tenant) => report,
                () = stop.cancelled() => return Settlement::Requeue,
            };
            (report.overall(), serde_json::to_value(&report).unwrap_or_default())
        }
        Err(error) if !is_permanent(&error) => {
            tracing::warn!(%error, "cannot read the tenant's credentials; check requeued");
            return Settlement::Requeue;
        }
        // No usable credentials: the status says so, with the message that names the fix.
        Err(error) => (PermissionStatus::Error, serde_json::json!({ "error": error.to_string() })),
    };
    let recorded = patiently(stop, || tenants::record_permissions(pool, tenant.id, status.as_str(), details.clone()));
    if recorded.await.is_none() {
        return Settlement::Requeue;
    }
    tracing::info!(status = status.as_str(), "permission check stored");
    if status == PermissionStatus::Granted {
        lift_consent_quarantine(deps, tenant.id, stop).await;
    }
    Settlement::Ack
}

/// Everything is granted now: a quarantine that missing consent caused has no cause left.
async fn lift_consent_quarantine(deps: &WorkerDeps, tenant_id: i64, stop: &CancellationToken) {
    let pool = &deps.shared.pool;
    let Some(Some(reason)) = patiently(stop, || admin_jobs::quarantine_reason(pool, tenant_id)).await else { return };
    if !caused_by_missing_permissions(&reason) {
        return;
    }
    match schedule::lift_quarantine(pool, tenant_id, &Actor::system()).await {
        Ok(true) => tracing::info!(%reason, "permissions granted; quarantine lifted"),
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, "permissions granted, but the quarantine could not be lifted"),
    }
}

/// Quarantine reasons end with the last error; missing consent reads as Graph's `ConsentMissing` or
/// `ReadDenied` ("… lacks permission …", "… (admin consent) …").
fn caused_by_missing_permissions(reason: &str) -> bool {
    reason.contains("lacks permission") || reason.contains("(admin consent)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphError;
    use crate::model::ObjectClass;

    #[test]
    fn a_consent_error_is_recognised_in_a_quarantine_reason() {
        let consent = GraphError::ConsentMissing {
            client_id: "app".to_owned(),
            tenant_id: "t".to_owned(),
            class: ObjectClass::Device,
            permissions: &["Device.Read.All"],
        };
        let reason = format!("device runs failed 5 times in a row; last error: {consent}");
        assert!(caused_by_missing_permissions(&reason), "{reason}");
        let outage = GraphError::RateBudgetExhausted { waited: std::time::Duration::from_secs(60) };
        assert!(!caused_by_missing_permissions(&format!("user runs failed 5 times in a row; last error: {outage}")));
    }
}
