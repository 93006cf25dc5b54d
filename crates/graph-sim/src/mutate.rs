//! Seeded random mutation batches: attribute updates, creations, soft and permanent deletes,
//! restores and membership changes, in realistic proportions.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::directory::{Directory, Life};
use crate::ids::ObjectRef;
use crate::rng::SplitMix;
use crate::words::{CITIES, DEPARTMENTS, JOB_TITLES};
use entrasync_model::ObjectClass;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutationBatch {
    pub seed: u64,
    pub count: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MutationSummary {
    pub updated: usize,
    pub created: usize,
    pub soft_deleted: usize,
    pub permanently_deleted: usize,
    pub restored: usize,
    pub members_added: usize,
    pub members_removed: usize,
}

fn pick_index(rng: &mut SplitMix, dir: &Directory, class: ObjectClass, life: Life) -> Option<ObjectRef> {
    let records = dir.records(class);
    if records.is_empty() {
        return None;
    }
    (0..16)
        .map(|_| rng.below(records.len() as u64) as u32)
        .find(|i| records[*i as usize].life == life)
        .map(|i| ObjectRef::new(class, i))
}

fn random_update(rng: &mut SplitMix, class: ObjectClass) -> Map<String, Value> {
    let mut attrs = Map::new();
    match class {
        ObjectClass::User => match rng.below(5) {
            0 => {
                attrs
                    .insert("jobTitle".into(), if rng.chance(0.1) { Value::Null } else { json!(rng.pick(JOB_TITLES)) });
            }
            1 => {
                attrs.insert("department".into(), json!(rng.pick(DEPARTMENTS)));
            }
            2 => {
                attrs.insert("city".into(), json!(rng.pick(CITIES).0));
            }
            3 => {
                attrs.insert("accountEnabled".into(), json!(rng.chance(0.5)));
            }
            _ => {
                attrs.insert("mobilePhone".into(), json!(format!("+1 206 555 {:04}", rng.below(10_000))));
            }
        },
        ObjectClass::Group => {
            attrs.insert("description".into(), json!(format!("Updated description {}", rng.below(1_000_000))));
        }
        ObjectClass::Device => {
            attrs.insert("accountEnabled".into(), json!(rng.chance(0.5)));
        }
    }
    attrs
}

/// Applies `batch.count` random mutations; a drawn mutation that finds no target is skipped.
pub fn random_batch(dir: &mut Directory, batch: &MutationBatch, now: chrono::DateTime<chrono::Utc>) -> MutationSummary {
    let mut rng = SplitMix::new(batch.seed ^ dir.current_usn().rotate_left(32));
    let mut summary = MutationSummary::default();
    for _ in 0..batch.count {
        let class = match rng.below(10) {
            0..=5 => ObjectClass::User,
            6..=8 => ObjectClass::Group,
            _ => ObjectClass::Device,
        };
        let roll = rng.below(100);
        let done = match roll {
            0..=39 => pick_index(&mut rng, dir, class, Life::Live)
                .map(|obj| (obj, random_update(&mut rng, class)))
                .is_some_and(|(obj, attrs)| {
                    dir.update(obj, &attrs).is_ok() && {
                        summary.updated += 1;
                        true
                    }
                }),
            40..=51 => {
                dir.create(class, &Map::new(), now).is_ok() && {
                    summary.created += 1;
                    true
                }
            }
            52..=61 => pick_index(&mut rng, dir, class, Life::Live).is_some_and(|obj| match dir.delete(obj, false) {
                Ok(Life::SoftDeleted) => {
                    summary.soft_deleted += 1;
                    true
                }
                Ok(_) => {
                    summary.permanently_deleted += 1;
                    true
                }
                Err(_) => false,
            }),
            62..=66 => pick_index(&mut rng, dir, class, Life::SoftDeleted).is_some_and(|obj| {
                dir.restore(obj).is_ok() && {
                    summary.restored += 1;
                    true
                }
            }),
            67..=71 => pick_index(&mut rng, dir, class, Life::SoftDeleted).is_some_and(|obj| {
                dir.delete(obj, true).is_ok() && {
                    summary.permanently_deleted += 1;
                    true
                }
            }),
            72..=87 => {
                let group = pick_index(&mut rng, dir, ObjectClass::Group, Life::Live);
                let member = pick_index(&mut rng, dir, ObjectClass::User, Life::Live);
                match (group, member) {
                    (Some(g), Some(m)) => {
                        dir.set_member(g, m, true).unwrap_or(false) && {
                            summary.members_added += 1;
                            true
                        }
                    }
                    _ => false,
                }
            }
            _ => {
                let group = pick_index(&mut rng, dir, ObjectClass::Group, Life::Live);
                let member = group.and_then(|g| {
                    let members: Vec<u32> = dir.members[g.index as usize].current_after(None).take(64).collect();
                    (!members.is_empty()).then(|| ObjectRef::unpack(members[rng.below(members.len() as u64) as usize]))
                });
                match (group, member) {
                    (Some(g), Some(m)) => {
                        dir.set_member(g, m, false).unwrap_or(false) && {
                            summary.members_removed += 1;
                            true
                        }
                    }
                    _ => false,
                }
            }
        };
        let _ = done;
    }
    summary
}
