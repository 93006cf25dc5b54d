//! One tenant's directory: compact per-object records stamped with update sequence numbers (USNs),
//! attributes synthesised on demand, overrides only for what was changed.

use serde_json::{Map, Value};

use crate::ids::{IdCodec, ObjectRef, INDEX_MASK};
use crate::membership::Membership;
use crate::props::{prop_id, prop_name, props, PropId};
use crate::synth::{format_time, synthesize};
use entrasync_model::ObjectClass;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Live,
    /// Deleted but restorable (`@removed` reason `changed`).
    SoftDeleted,
    /// Gone for good (`@removed` reason `deleted`).
    Deleted,
}

/// An attribute set after generation, with the USN of the change.
#[derive(Debug, Clone)]
pub struct Override {
    pub prop: PropId,
    pub value: Value,
    pub usn: u64,
}

/// Overridden attributes of one object, behind one thin pointer so a record stays 32 bytes.
#[derive(Debug, Clone, Default)]
pub struct Overrides(Vec<Override>);

impl std::ops::Deref for Overrides {
    type Target = [Override];
    fn deref(&self) -> &[Override] {
        &self.0
    }
}

/// 32 bytes per object; attributes live in `synth` unless overridden.
#[derive(Debug, Clone)]
pub struct Record {
    /// Last change of any kind (attributes, membership, deletion, restore).
    pub usn: u64,
    /// Created or restored: a delta round that started before this must emit the whole object.
    pub born_usn: u64,
    pub life: Life,
    pub overrides: Option<Box<Overrides>>,
}

impl Record {
    fn new(usn: u64) -> Self {
        Self { usn, born_usn: usn, life: Life::Live, overrides: None }
    }

    pub fn override_of(&self, prop: PropId) -> Option<&Override> {
        self.overrides.as_ref().and_then(|o| o.iter().find(|o| o.prop == prop))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("object {0} does not exist")]
    NotFound(String),
    #[error("object {id} is {state}, not {expected}")]
    WrongState { id: String, state: &'static str, expected: &'static str },
    #[error("{class} has no property {name:?}")]
    UnknownProperty { class: ObjectClass, name: String },
    #[error("{0}")]
    Invalid(String),
}

pub struct Directory {
    pub tenant_id: String,
    pub domain: String,
    pub seed: u64,
    pub codec: IdCodec,
    usn: u64,
    pub users: Vec<Record>,
    pub groups: Vec<Record>,
    pub devices: Vec<Record>,
    /// Parallel to `groups`.
    pub members: Vec<Membership>,
}

fn life_name(life: Life) -> &'static str {
    match life {
        Life::Live => "live",
        Life::SoftDeleted => "soft-deleted",
        Life::Deleted => "permanently deleted",
    }
}

impl Directory {
    pub fn new(tenant_id: &str, domain: &str, seed: u64) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            domain: domain.to_owned(),
            seed,
            codec: IdCodec::new(seed ^ crate::ids::mix64(tenant_id.len() as u64)),
            usn: 1,
            users: Vec::new(),
            groups: Vec::new(),
            devices: Vec::new(),
            members: Vec::new(),
        }
    }

    pub fn current_usn(&self) -> u64 {
        self.usn
    }

    pub fn next_usn(&mut self) -> u64 {
        self.usn += 1;
        self.usn
    }

    pub fn records(&self, class: ObjectClass) -> &[Record] {
        match class {
            ObjectClass::User => &self.users,
            ObjectClass::Group => &self.groups,
            ObjectClass::Device => &self.devices,
        }
    }

    fn records_mut(&mut self, class: ObjectClass) -> &mut Vec<Record> {
        match class {
            ObjectClass::User => &mut self.users,
            ObjectClass::Group => &mut self.groups,
            ObjectClass::Device => &mut self.devices,
        }
    }

    pub fn record(&self, obj: ObjectRef) -> Option<&Record> {
        self.records(obj.class).get(obj.index as usize)
    }

    pub fn id_of(&self, obj: ObjectRef) -> String {
        self.codec.encode(obj).to_string()
    }

    /// Resolves an id of the given class (any class when `None`) to an existing record.
    pub fn resolve(&self, id: &str, class: Option<ObjectClass>) -> Result<ObjectRef, DirectoryError> {
        self.codec
            .parse(id)
            .filter(|r| class.is_none_or(|c| c == r.class))
            .filter(|r| self.record(*r).is_some())
            .ok_or_else(|| DirectoryError::NotFound(id.to_owned()))
    }

    pub fn live_count(&self, class: ObjectClass) -> usize {
        self.records(class).iter().filter(|r| r.life == Life::Live).count()
    }

    /// Appends freshly generated objects (attributes come from `synth`), all stamped with one USN.
    pub fn push_generated(&mut self, class: ObjectClass, count: usize) -> Result<std::ops::Range<u32>, DirectoryError> {
        let start = self.records(class).len();
        if start + count > INDEX_MASK as usize {
            return Err(DirectoryError::Invalid(format!("at most {INDEX_MASK} {class} objects per tenant")));
        }
        let usn = self.next_usn();
        let records = self.records_mut(class);
        records.reserve(count);
        records.extend((0..count).map(|_| Record::new(usn)));
        if class == ObjectClass::Group {
            self.members.resize_with(start + count, Membership::default);
        }
        Ok(start as u32..(start + count) as u32)
    }

    /// The object's effective attributes: synthesised, then overridden. `None` = never set (omitted).
    pub fn attributes(&self, obj: ObjectRef) -> Vec<Option<Value>> {
        let mut values = synthesize(obj.class, self.seed, &self.domain, obj.index);
        if let Some(overrides) = self.record(obj).and_then(|r| r.overrides.as_ref()) {
            for o in overrides.iter() {
                values[usize::from(o.prop)] = Some(o.value.clone());
            }
        }
        values
    }

    /// The attributes as a JSON object (id first), as the truth readback shows them.
    pub fn attributes_json(&self, obj: ObjectRef) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("id".into(), Value::String(self.id_of(obj)));
        for (i, v) in self.attributes(obj).into_iter().enumerate() {
            if let Some(v) = v {
                map.insert(prop_name(obj.class, i as PropId).to_owned(), v);
            }
        }
        map
    }

    pub fn is_unified_group(&self, index: u32) -> bool {
        let Some(id) = prop_id(ObjectClass::Group, "groupTypes") else { return false };
        matches!(&self.attributes(ObjectRef::new(ObjectClass::Group, index))[usize::from(id)],
            Some(Value::Array(types)) if types.iter().any(|t| t.as_str().is_some_and(|s| s.eq_ignore_ascii_case("Unified"))))
    }

    fn require(&self, obj: ObjectRef, expected: Life) -> Result<(), DirectoryError> {
        let record = self.record(obj).ok_or_else(|| DirectoryError::NotFound(self.id_of(obj)))?;
        if record.life != expected {
            return Err(DirectoryError::WrongState {
                id: self.id_of(obj),
                state: life_name(record.life),
                expected: life_name(expected),
            });
        }
        Ok(())
    }

    fn parse_attributes(
        class: ObjectClass,
        attrs: &Map<String, Value>,
    ) -> Result<Vec<(PropId, Value)>, DirectoryError> {
        attrs
            .iter()
            .filter(|(name, _)| name.as_str() != "id")
            .map(|(name, value)| {
                prop_id(class, name)
                    .map(|p| (p, value.clone()))
                    .ok_or_else(|| DirectoryError::UnknownProperty { class, name: name.clone() })
            })
            .collect()
    }

    fn apply_overrides(&mut self, obj: ObjectRef, values: Vec<(PropId, Value)>, usn: u64) {
        let record = &mut self.records_mut(obj.class)[obj.index as usize];
        let mut overrides = record.overrides.take().map(|o| o.0).unwrap_or_default();
        for (prop, value) in values {
            match overrides.iter_mut().find(|o| o.prop == prop) {
                Some(o) => {
                    o.value = value;
                    o.usn = usn;
                }
                None => overrides.push(Override { prop, value, usn }),
            }
        }
        record.overrides = Some(Box::new(Overrides(overrides)));
        record.usn = usn;
    }

    /// Creates an object: generated attributes for its index, overridden by `attrs`.
    pub fn create(
        &mut self,
        class: ObjectClass,
        attrs: &Map<String, Value>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<ObjectRef, DirectoryError> {
        let mut values = Self::parse_attributes(class, attrs)?;
        if let Some(created) = prop_id(class, "createdDateTime") {
            if !values.iter().any(|(p, _)| *p == created) {
                values.push((created, Value::String(format_time(now))));
            }
        }
        let range = self.push_generated(class, 1)?;
        let obj = ObjectRef::new(class, range.start);
        let usn = self.records(class)[range.start as usize].usn;
        self.apply_overrides(obj, values, usn);
        Ok(obj)
    }

    pub fn update(&mut self, obj: ObjectRef, attrs: &Map<String, Value>) -> Result<(), DirectoryError> {
        let values = Self::parse_attributes(obj.class, attrs)?;
        self.require(obj, Life::Live)?;
        if values.is_empty() {
            return Ok(());
        }
        let usn = self.next_usn();
        self.apply_overrides(obj, values, usn);
        Ok(())
    }

    /// Deletes an object. Security (non-Microsoft 365) groups are always deleted permanently.
    /// Returns the resulting state.
    pub fn delete(&mut self, obj: ObjectRef, permanent: bool) -> Result<Life, DirectoryError> {
        let record = self.record(obj).ok_or_else(|| DirectoryError::NotFound(self.id_of(obj)))?;
        let soft_possible = obj.class != ObjectClass::Group || self.is_unified_group(obj.index);
        match (record.life, permanent, soft_possible) {
            (Life::Deleted, _, _) => {
                return Err(DirectoryError::WrongState {
                    id: self.id_of(obj),
                    state: "permanently deleted",
                    expected: "live",
                })
            }
            (Life::SoftDeleted, false, _) => {
                return Err(DirectoryError::WrongState { id: self.id_of(obj), state: "soft-deleted", expected: "live" })
            }
            (Life::Live, false, true) => {
                let usn = self.next_usn();
                let record = &mut self.records_mut(obj.class)[obj.index as usize];
                record.life = Life::SoftDeleted;
                record.usn = usn;
                return Ok(Life::SoftDeleted);
            }
            _ => {}
        }
        let usn = self.next_usn();
        let record = &mut self.records_mut(obj.class)[obj.index as usize];
        record.life = Life::Deleted;
        record.usn = usn;
        record.overrides = None;
        // A permanently deleted object leaves every group it was in (members@delta removal).
        let packed = obj.pack();
        for (index, membership) in self.members.iter_mut().enumerate() {
            if membership.set(packed, false, usn) {
                self.groups[index].usn = usn;
            }
        }
        if obj.class == ObjectClass::Group {
            self.members[obj.index as usize].clear();
        }
        Ok(Life::Deleted)
    }

    pub fn restore(&mut self, obj: ObjectRef) -> Result<(), DirectoryError> {
        self.require(obj, Life::SoftDeleted)?;
        let usn = self.next_usn();
        let record = &mut self.records_mut(obj.class)[obj.index as usize];
        record.life = Life::Live;
        record.usn = usn;
        record.born_usn = usn;
        Ok(())
    }

    pub fn set_member(&mut self, group: ObjectRef, member: ObjectRef, present: bool) -> Result<bool, DirectoryError> {
        if group.class != ObjectClass::Group {
            return Err(DirectoryError::Invalid(format!("{} is not a group", self.id_of(group))));
        }
        if group == member {
            return Err(DirectoryError::Invalid("a group cannot be a member of itself".into()));
        }
        self.require(group, Life::Live)?;
        if present {
            self.require(member, Life::Live)?;
        } else if self.record(member).is_none() {
            return Err(DirectoryError::NotFound(self.id_of(member)));
        }
        let packed = member.pack();
        if self.members[group.index as usize].contains(packed) == present {
            return Ok(false);
        }
        let usn = self.next_usn();
        self.members[group.index as usize].set(packed, present, usn);
        self.groups[group.index as usize].usn = usn;
        Ok(true)
    }

    pub fn set_generated_members(&mut self, group_index: u32, members: Vec<u32>) {
        self.members[group_index as usize] = Membership::from_sorted(members);
    }

    /// Bytes held per class (records plus overrides) and for memberships: for the benchmark notes.
    pub fn heap_bytes(&self) -> usize {
        let records =
            (self.users.capacity() + self.groups.capacity() + self.devices.capacity()) * std::mem::size_of::<Record>();
        let overrides: usize = [&self.users, &self.groups, &self.devices]
            .iter()
            .flat_map(|v| v.iter())
            .filter_map(|r| r.overrides.as_ref())
            .map(|o| o.0.capacity() * std::mem::size_of::<Override>() + 64)
            .sum();
        records
            + overrides
            + self.members.iter().map(|m| m.heap_bytes() + std::mem::size_of::<Membership>()).sum::<usize>()
    }

    pub fn prop_count(class: ObjectClass) -> usize {
        props(class).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_costs_32_bytes() {
        assert_eq!(std::mem::size_of::<Record>(), 32);
    }
}
