//! Deterministic directory generation: counts plus a seed give the same tenant every time.
//! Attributes are synthesised lazily (see `synth`); only records and membership lists are built here.

use serde::{Deserialize, Serialize};

use crate::directory::{Directory, DirectoryError};
use crate::ids::ObjectRef;
use crate::rng::SplitMix;
use crate::synth::{group_kind, GroupKind};
use entrasync_model::ObjectClass;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    #[serde(default)]
    pub users: usize,
    #[serde(default)]
    pub groups: usize,
    #[serde(default)]
    pub devices: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenerateSummary {
    pub users: usize,
    pub groups: usize,
    pub devices: usize,
    pub memberships: usize,
    pub elapsed_ms: u128,
}

/// Sizes: most groups are small, a few are large, and (given enough users) one draws 50,000+ members
/// (with replacement: a million users give it ~48,700 distinct or more).
fn group_size(rng: &mut SplitMix, index: u32, users: u64) -> u64 {
    let size = match index {
        0 => users, // "All Company"
        1 if users >= 60_000 => 50_000 + rng.below(10_000),
        _ => match rng.unit() {
            r if r < 0.70 => 1 + rng.below(25),
            r if r < 0.95 => 26 + rng.below(275),
            r if r < 0.999 => 300 + rng.below(2_700),
            _ => 50_000 + rng.below(50_000),
        },
    };
    size.min(users)
}

/// Distinct random users: sampled draws for small groups, a Bernoulli sweep for big ones.
fn sample_users(rng: &mut SplitMix, size: u64, users: u64) -> Vec<u32> {
    if size == 0 || users == 0 {
        return Vec::new();
    }
    if size == users {
        return (0..users as u32).map(|i| ObjectRef::new(ObjectClass::User, i).pack()).collect();
    }
    if size * 4 > users {
        let p = size as f64 / users as f64;
        return (0..users as u32)
            .filter(|_| rng.chance(p))
            .map(|i| ObjectRef::new(ObjectClass::User, i).pack())
            .collect();
    }
    let mut picked: Vec<u32> =
        (0..size).map(|_| ObjectRef::new(ObjectClass::User, rng.below(users) as u32).pack()).collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

pub fn generate(dir: &mut Directory, spec: &GenerateSpec) -> Result<GenerateSummary, DirectoryError> {
    let started = std::time::Instant::now();
    dir.push_generated(ObjectClass::User, spec.users)?;
    dir.push_generated(ObjectClass::Device, spec.devices)?;
    let groups = dir.push_generated(ObjectClass::Group, spec.groups)?;
    let users = dir.users.len() as u64;
    let devices = dir.devices.len() as u64;
    let mut memberships = 0;
    for index in groups {
        let mut rng = SplitMix::for_object(dir.seed, 0x6d656d, u64::from(index));
        let size = group_size(&mut rng, index, users);
        let mut members = sample_users(&mut rng, size, users);
        let kind = group_kind(dir.seed, index);
        // Some security groups hold devices (device policies), some groups nest earlier groups.
        if kind == GroupKind::Security && devices > 0 && rng.chance(0.1) {
            for _ in 0..(1 + rng.below(20)).min(devices) {
                members.push(ObjectRef::new(ObjectClass::Device, rng.below(devices) as u32).pack());
            }
        }
        if index > 2 && rng.chance(0.05) {
            for _ in 0..1 + rng.below(3) {
                let nested = 1 + rng.below(u64::from(index) - 1) as u32;
                members.push(ObjectRef::new(ObjectClass::Group, nested).pack());
            }
        }
        memberships += members.len();
        dir.set_generated_members(index, members);
    }
    tracing::info!(tenant = %dir.tenant_id, users = spec.users, groups = spec.groups, devices = spec.devices, memberships, "generated directory");
    Ok(GenerateSummary {
        users: spec.users,
        groups: spec.groups,
        devices: spec.devices,
        memberships,
        elapsed_ms: started.elapsed().as_millis(),
    })
}
