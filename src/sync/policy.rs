//! The seam for scoping filters and attribute mappings (filled by the mappings issue). A round asks
//! the policy, per object, whether it is in scope and what its mapped attributes are.

use serde_json::{Map, Value};

use crate::model::ObjectClass;
use crate::store::wire::JsonText;

/// What the policy decided for one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Store the object. `mapped`: what the mappings applied always produce (`None`: no mappings
    /// apply), as a JSON object in canonical text (`marker::canonical_json`: keys sorted), which is
    /// hashed into the object's change marker and stored as it is. `on_create`: what applies only when
    /// the object is first stored (mappings applied only during creation, defaults for null results);
    /// written once, never compared. The effective mapped attributes are `on_create` overlaid with
    /// `mapped`.
    Admit { mapped: Option<JsonText>, on_create: Option<Value> },
    /// Outside the scoping filter: not stored, counted as filtered (and removed if stored before).
    Filter,
}

/// Scoping and mapping for one tenant. Must be pure: the same attributes give the same answer.
pub trait ObjectPolicy: Send + Sync {
    fn admit(&self, class: ObjectClass, attrs: &Map<String, Value>) -> Admission;

    /// Which attributes [`admit`](Self::admit) looks at. A round hands it a map of only those (matched
    /// without regard to case, as attribute references are), parsed from the page's canonical text, or
    /// an empty map when it reads none: parsing every attribute into values is most of what a policy
    /// costs (issues 14 and 16, client CPU).
    fn reads(&self) -> Reads {
        Reads::Everything
    }
}

/// The top-level attributes a policy reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    Nothing,
    /// These names, in any case (`givenName` also finds `GivenName`).
    Attributes(Vec<String>),
    Everything,
}

/// No filters and no mappings: every object is stored as Graph sent it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThrough;

impl ObjectPolicy for PassThrough {
    fn admit(&self, _class: ObjectClass, _attrs: &Map<String, Value>) -> Admission {
        Admission::Admit { mapped: None, on_create: None }
    }

    fn reads(&self) -> Reads {
        Reads::Nothing
    }
}
