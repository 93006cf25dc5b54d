//! Does the store equal the emulator's truth? The comparison of the convergence tests
//! (`tests/integration/sync_support.rs`, `assert_converged` without exact soft deletions, since 410
//! resets and expired delta tokens force full listings, which cannot tell soft from permanent
//! deletion): every live object stored live with the selected attributes, nothing else live, every
//! live group's members exact. Differences are counted, not asserted, so the report shows them all.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde::Serialize;

use crate::demo::emulated::EmulatedTenant;
use crate::graph::default_select;
use crate::model::ObjectClass;
use crate::store::{members, objects, Pool};

/// Differences between the store and the truth, summed over tenants and classes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Divergence {
    /// Live in the emulator, missing or deleted in the store.
    pub objects_lost: u64,
    /// Live in the store, not live in the emulator.
    pub objects_extra: u64,
    /// Live in both, with different attributes.
    pub objects_differing: u64,
    /// Memberships of live groups missing from the store or stored in excess.
    pub memberships_differing: u64,
    /// The first few differences, for people.
    pub examples: Vec<String>,
}

const EXAMPLES: usize = 20;

impl Divergence {
    pub fn is_empty(&self) -> bool {
        self.objects_lost + self.objects_extra + self.objects_differing + self.memberships_differing == 0
    }

    fn note(&mut self, text: impl FnOnce() -> String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(text());
        }
    }
}

/// Compares every tenant's stored objects and memberships with the emulator's truth.
pub async fn compare(
    pool: &Pool,
    sim: &graph_sim::RunningSim,
    tenants: &[EmulatedTenant],
) -> anyhow::Result<Divergence> {
    let mut divergence = Divergence::default();
    let client = pool.get().await.context("a connection to read the store")?;
    for tenant in tenants {
        for class in ObjectClass::ALL {
            let truth = sim
                .state()
                .truth(&tenant.sim_tenant, class)
                .map_err(|e| anyhow::anyhow!("the emulator's truth: {e}"))?;
            let stored = objects::list(&client, tenant.tenant_id, class).await.context("stored objects")?;
            let selected: BTreeSet<&str> =
                default_select(class).iter().copied().filter(|p| *p != "id" && *p != "members").collect();
            let live: BTreeMap<String, &serde_json::Value> =
                stored.iter().filter(|o| !o.deleted).map(|o| (o.object_id.to_string(), &o.attrs)).collect();
            for (id, attrs) in &truth.objects {
                let expected: serde_json::Map<String, serde_json::Value> = attrs
                    .iter()
                    .filter(|(k, v)| selected.contains(k.as_str()) && !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                match live.get(id) {
                    None => {
                        divergence.objects_lost += 1;
                        divergence.note(|| format!("tenant {} {class} {id}: lost", tenant.tenant_id));
                    }
                    Some(stored) if **stored != serde_json::Value::Object(expected.clone()) => {
                        divergence.objects_differing += 1;
                        divergence.note(|| {
                            format!("tenant {} {class} {id}: {}", tenant.tenant_id, differences(stored, &expected))
                        });
                    }
                    Some(_) => {}
                }
            }
            for id in live.keys().filter(|id| !truth.objects.contains_key(*id)) {
                divergence.objects_extra += 1;
                divergence.note(|| format!("tenant {} {class} {id}: live in the store only", tenant.tenant_id));
            }
            if class == ObjectClass::Group {
                let mut by_group: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for (group, member) in members::list(&client, tenant.tenant_id).await.context("memberships")? {
                    by_group.entry(group.to_string()).or_default().insert(member.to_string());
                }
                for (group, true_members) in &truth.memberships {
                    let expected: BTreeSet<String> = true_members.iter().cloned().collect();
                    let actual = by_group.remove(group).unwrap_or_default();
                    let differing = actual.symmetric_difference(&expected).count() as u64;
                    if differing > 0 {
                        divergence.memberships_differing += differing;
                        divergence.note(|| {
                            let missing: Vec<&String> = expected.difference(&actual).collect();
                            let extra: Vec<&String> = actual.difference(&expected).collect();
                            format!(
                                "tenant {} ({}) group {group}: members missing from the store {missing:?}, \
                                 stored in excess {extra:?}",
                                tenant.tenant_id, tenant.sim_tenant
                            )
                        });
                    }
                }
                // What is left belongs to groups that are not live, which may keep members only when
                // soft-deleted (in the store or in the emulator).
                let soft: BTreeSet<String> =
                    stored.iter().filter(|o| o.deleted).map(|o| o.object_id.to_string()).collect();
                let true_soft: BTreeSet<&String> = truth.soft_deleted.iter().collect();
                for (group, members) in by_group {
                    if !soft.contains(&group) && !true_soft.contains(&group) {
                        divergence.memberships_differing += members.len() as u64;
                        divergence
                            .note(|| format!("tenant {} group {group} is gone but keeps members", tenant.tenant_id));
                    }
                }
            }
        }
    }
    Ok(divergence)
}

/// The attributes that differ, as `name: stored → expected`.
fn differences(stored: &serde_json::Value, expected: &serde_json::Map<String, serde_json::Value>) -> String {
    let empty = serde_json::Map::new();
    let stored = stored.as_object().unwrap_or(&empty);
    let names: BTreeSet<&String> = stored.keys().chain(expected.keys()).collect();
    let absent = serde_json::Value::Null;
    names
        .into_iter()
        .filter(|name| stored.get(*name) != expected.get(*name))
        .map(|name| {
            let (was, wanted) = (stored.get(name).unwrap_or(&absent), expected.get(name).unwrap_or(&absent));
            format!("{name}: {was} → {wanted}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
