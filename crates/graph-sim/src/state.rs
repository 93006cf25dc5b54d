//! The emulator's state and its Rust admin API: tenants with their directories, settings, faults,
//! counters and the clock. The HTTP admin API (`routes::admin`) is a thin layer over these methods.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::clouds::SimCloud;
use crate::counters::{CounterSnapshot, Counters};
use crate::directory::{Directory, DirectoryError, Life};
use crate::faults::{ActiveFault, FaultError, FaultRule, FaultStore};
use crate::generate::{generate, GenerateSpec, GenerateSummary};
use crate::identity::Identity;
use crate::ids::ObjectRef;
use crate::mutate::{random_batch, MutationBatch, MutationSummary};
use crate::settings::{SettingsPatch, TenantSettings};
use crate::throttle::{ResourceLimiter, ResourceLimits};
use entrasync_model::ObjectClass;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("tenant {0} does not exist")]
    UnknownTenant(String),
    #[error("tenant {0} already exists")]
    TenantExists(String),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Fault(#[from] FaultError),
    #[error("invalid settings: {0}")]
    Settings(String),
}

// A panic while holding a lock leaves plain data behind; keep serving it.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

pub struct Tenant {
    pub id: String,
    pub domain: String,
    /// The organization's display name (`GET /v1.0/organization`).
    pub display_name: String,
    pub cloud: SimCloud,
    pub directory: RwLock<Directory>,
    pub settings: RwLock<TenantSettings>,
    pub counters: Counters,
}

/// Request to create a tenant; everything is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// A GUID; random when absent.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Primary domain; `{short id}.onmicrosoft.com` when absent.
    #[serde(default)]
    pub domain: Option<String>,
    /// The organization's display name; derived from the domain when absent (`contoso.…` → "Contoso").
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub cloud: SimCloud,
    /// Seed of the generated directory (attributes, ids, memberships).
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub users: usize,
    #[serde(default)]
    pub groups: usize,
    #[serde(default)]
    pub devices: usize,
    #[serde(default)]
    pub settings: Option<SettingsPatch>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantInfo {
    pub tenant_id: String,
    pub domain: String,
    #[serde(default)]
    pub display_name: String,
    pub cloud: SimCloud,
    pub seed: u64,
    pub users: usize,
    pub groups: usize,
    pub devices: usize,
    pub usn: u64,
    pub settings: TenantSettings,
}

/// The true current state of one class, for convergence checks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Truth {
    /// Live objects with their attributes (never-set attributes omitted), keyed by id.
    pub objects: BTreeMap<String, Map<String, Value>>,
    pub soft_deleted: Vec<String>,
    /// Groups only: live group id → ids of its members (soft-deleted members included, as in Entra).
    pub memberships: BTreeMap<String, Vec<String>>,
}

/// The outcome of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteOutcome {
    SoftDeleted,
    PermanentlyDeleted,
}

/// The default organization name: the domain's first label, capitalised (`contoso.onmicrosoft.com` → "Contoso").
fn display_name_of(domain: &str) -> String {
    let label = domain.split('.').next().unwrap_or(domain);
    let mut chars = label.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub struct SimState {
    pub clock: Clock,
    pub identity: Arc<Identity>,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    defaults: TenantSettings,
    pub faults: FaultStore,
    pub limiter: ResourceLimiter,
    enforce_limits: AtomicBool,
    limits: RwLock<ResourceLimits>,
    pub counters: Counters,
}

impl SimState {
    pub fn new(clock: Clock, identity: Arc<Identity>, defaults: TenantSettings, enforce_limits: bool) -> Self {
        Self {
            clock,
            identity,
            tenants: RwLock::new(HashMap::new()),
            defaults,
            faults: FaultStore::default(),
            limiter: ResourceLimiter::default(),
            enforce_limits: AtomicBool::new(enforce_limits),
            limits: RwLock::new(ResourceLimits::default()),
            counters: Counters::default(),
        }
    }

    pub fn tenant(&self, tenant_id: &str) -> Result<Arc<Tenant>, SimError> {
        read(&self.tenants)
            .get(&tenant_id.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| SimError::UnknownTenant(tenant_id.to_owned()))
    }

    /// Creates a tenant (also in the identity platform) and generates its directory.
    pub fn create_tenant(&self, spec: TenantSpec) -> Result<TenantInfo, SimError> {
        let tenant_id = spec.tenant_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()).to_ascii_lowercase();
        let domain =
            spec.domain.clone().unwrap_or_else(|| format!("{}.onmicrosoft.com", &tenant_id[..8.min(tenant_id.len())]));
        let display_name = spec.display_name.clone().unwrap_or_else(|| display_name_of(&domain));
        let seed = spec
            .seed
            .unwrap_or_else(|| crate::ids::mix64(tenant_id.bytes().fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b))));
        let settings = match &spec.settings {
            Some(patch) => self.defaults.apply(patch).map_err(SimError::Settings)?,
            None => self.defaults.clone(),
        };
        let mut directory = Directory::new(&tenant_id, &domain, seed);
        generate(&mut directory, &GenerateSpec { users: spec.users, groups: spec.groups, devices: spec.devices })?;
        let tenant = Arc::new(Tenant {
            id: tenant_id.clone(),
            domain: domain.clone(),
            display_name,
            cloud: spec.cloud,
            directory: RwLock::new(directory),
            settings: RwLock::new(settings),
            counters: Counters::default(),
        });
        {
            let mut tenants = write(&self.tenants);
            if tenants.contains_key(&tenant_id) {
                return Err(SimError::TenantExists(tenant_id));
            }
            tenants.insert(tenant_id.clone(), tenant.clone());
        }
        self.identity.add_tenant(&tenant_id, &domain);
        tracing::info!(tenant = %tenant_id, %domain, "graph-sim tenant created");
        Ok(self.info(&tenant))
    }

    fn info(&self, tenant: &Tenant) -> TenantInfo {
        let dir = read(&tenant.directory);
        TenantInfo {
            tenant_id: tenant.id.clone(),
            domain: tenant.domain.clone(),
            display_name: tenant.display_name.clone(),
            cloud: tenant.cloud,
            seed: dir.seed,
            users: dir.live_count(ObjectClass::User),
            groups: dir.live_count(ObjectClass::Group),
            devices: dir.live_count(ObjectClass::Device),
            usn: dir.current_usn(),
            settings: read(&tenant.settings).clone(),
        }
    }

    pub fn tenant_info(&self, tenant_id: &str) -> Result<TenantInfo, SimError> {
        let tenant = self.tenant(tenant_id)?;
        Ok(self.info(&tenant))
    }

    pub fn tenants(&self) -> Vec<TenantInfo> {
        let tenants: Vec<Arc<Tenant>> = read(&self.tenants).values().cloned().collect();
        let mut infos: Vec<TenantInfo> = tenants.iter().map(|t| self.info(t)).collect();
        infos.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
        infos
    }

    /// Adds more generated objects to a tenant.
    pub fn generate(&self, tenant_id: &str, spec: &GenerateSpec) -> Result<GenerateSummary, SimError> {
        let tenant = self.tenant(tenant_id)?;
        let mut dir = write(&tenant.directory);
        Ok(generate(&mut dir, spec)?)
    }

    fn with_dir<T>(
        &self,
        tenant_id: &str,
        f: impl FnOnce(&mut Directory) -> Result<T, DirectoryError>,
    ) -> Result<T, SimError> {
        let tenant = self.tenant(tenant_id)?;
        let mut dir = write(&tenant.directory);
        Ok(f(&mut dir)?)
    }

    /// Creates an object: generated attributes for its slot, overridden by `attrs`. Returns its id.
    pub fn create_object(
        &self,
        tenant_id: &str,
        class: ObjectClass,
        attrs: &Map<String, Value>,
    ) -> Result<String, SimError> {
        let now = self.clock.now();
        self.with_dir(tenant_id, |dir| dir.create(class, attrs, now).map(|obj| dir.id_of(obj)))
    }

    /// Sets attributes (`null` clears one).
    pub fn update_object(&self, tenant_id: &str, id: &str, attrs: &Map<String, Value>) -> Result<(), SimError> {
        self.with_dir(tenant_id, |dir| {
            let obj = dir.resolve(id, None)?;
            dir.update(obj, attrs)
        })
    }

    /// Soft delete (restorable), or permanent. Security groups always go straight to permanent.
    pub fn delete_object(&self, tenant_id: &str, id: &str, permanent: bool) -> Result<DeleteOutcome, SimError> {
        self.with_dir(tenant_id, |dir| {
            let obj = dir.resolve(id, None)?;
            Ok(match dir.delete(obj, permanent)? {
                Life::SoftDeleted => DeleteOutcome::SoftDeleted,
                _ => DeleteOutcome::PermanentlyDeleted,
            })
        })
    }

    pub fn restore_object(&self, tenant_id: &str, id: &str) -> Result<(), SimError> {
        self.with_dir(tenant_id, |dir| {
            let obj = dir.resolve(id, None)?;
            dir.restore(obj)
        })
    }

    /// Adds (`present`) or removes a member; returns whether anything changed.
    pub fn set_member(
        &self,
        tenant_id: &str,
        group_id: &str,
        member_id: &str,
        present: bool,
    ) -> Result<bool, SimError> {
        self.with_dir(tenant_id, |dir| {
            let group = dir.resolve(group_id, Some(ObjectClass::Group))?;
            let member = dir.resolve(member_id, None)?;
            dir.set_member(group, member, present)
        })
    }

    pub fn add_member(&self, tenant_id: &str, group_id: &str, member_id: &str) -> Result<bool, SimError> {
        self.set_member(tenant_id, group_id, member_id, true)
    }

    pub fn remove_member(&self, tenant_id: &str, group_id: &str, member_id: &str) -> Result<bool, SimError> {
        self.set_member(tenant_id, group_id, member_id, false)
    }

    /// A seeded batch of random mutations (same seed + same state → same changes).
    pub fn random_mutations(&self, tenant_id: &str, batch: &MutationBatch) -> Result<MutationSummary, SimError> {
        let now = self.clock.now();
        self.with_dir(tenant_id, |dir| Ok(random_batch(dir, batch, now)))
    }

    /// Ids of a class, in generation order; `live_only` skips deleted ones. Handy for tests.
    pub fn ids(&self, tenant_id: &str, class: ObjectClass, live_only: bool) -> Result<Vec<String>, SimError> {
        let tenant = self.tenant(tenant_id)?;
        let dir = read(&tenant.directory);
        Ok(dir
            .records(class)
            .iter()
            .enumerate()
            .filter(|(_, r)| !live_only || r.life == Life::Live)
            .map(|(i, _)| dir.id_of(ObjectRef::new(class, i as u32)))
            .collect())
    }

    /// One object's current attributes, or `None` if it is not live.
    pub fn object(&self, tenant_id: &str, id: &str) -> Result<Option<Map<String, Value>>, SimError> {
        let tenant = self.tenant(tenant_id)?;
        let dir = read(&tenant.directory);
        let obj = dir.resolve(id, None)?;
        Ok(dir.record(obj).filter(|r| r.life == Life::Live).map(|_| dir.attributes_json(obj)))
    }

    /// The true current state of a class, for convergence checks.
    pub fn truth(&self, tenant_id: &str, class: ObjectClass) -> Result<Truth, SimError> {
        let tenant = self.tenant(tenant_id)?;
        let dir = read(&tenant.directory);
        let mut truth = Truth::default();
        for (index, record) in dir.records(class).iter().enumerate() {
            let obj = ObjectRef::new(class, index as u32);
            match record.life {
                Life::Live => {
                    truth.objects.insert(dir.id_of(obj), dir.attributes_json(obj));
                    if class == ObjectClass::Group {
                        let members =
                            dir.members[index].current_after(None).map(|m| dir.id_of(ObjectRef::unpack(m))).collect();
                        truth.memberships.insert(dir.id_of(obj), members);
                    }
                }
                Life::SoftDeleted => truth.soft_deleted.push(dir.id_of(obj)),
                Life::Deleted => {}
            }
        }
        Ok(truth)
    }

    pub fn settings(&self, tenant_id: &str) -> Result<TenantSettings, SimError> {
        Ok(read(&self.tenant(tenant_id)?.settings).clone())
    }

    pub fn update_settings(&self, tenant_id: &str, patch: &SettingsPatch) -> Result<TenantSettings, SimError> {
        let tenant = self.tenant(tenant_id)?;
        let mut settings = write(&tenant.settings);
        *settings = settings.apply(patch).map_err(SimError::Settings)?;
        Ok(settings.clone())
    }

    pub fn tenant_counters(&self, tenant_id: &str) -> Result<CounterSnapshot, SimError> {
        Ok(self.tenant(tenant_id)?.counters.snapshot())
    }

    pub fn global_counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    pub fn add_fault(&self, rule: FaultRule) -> Result<u64, SimError> {
        Ok(self.faults.add(rule)?)
    }

    pub fn remove_fault(&self, id: u64) -> bool {
        self.faults.remove(id)
    }

    /// Clears all faults, or one tenant's.
    pub fn clear_faults(&self, tenant: Option<&str>) {
        self.faults.clear(tenant);
    }

    pub fn list_faults(&self) -> Vec<ActiveFault> {
        self.faults.list()
    }

    pub fn advance_clock(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn set_resource_limits(&self, enforce: bool, limits: ResourceLimits) {
        self.enforce_limits.store(enforce, Ordering::Relaxed);
        *write(&self.limits) = limits;
    }

    /// `Some(limits)` when enforcement is on.
    pub fn resource_limits(&self) -> Option<ResourceLimits> {
        self.enforce_limits.load(Ordering::Relaxed).then(|| read(&self.limits).clone())
    }
}
