//! Opaque state tokens for `$skiptoken` / `$deltatoken`. They encode the original query (selection,
//! filter) and the position, so a link alone resumes a walk, as Graph's do.

use base64::Engine;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::props::PropId;
use entrasync_model::ObjectClass;

/// What the client asked for on the initial request; carried unchanged through every link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub props: Vec<PropId>,
    /// Groups: emit `members@delta` / member lists.
    pub members: bool,
    /// `$select` was given (changes the `@odata.context` projection).
    pub explicit: bool,
}

/// Where a delta walk is and which changes it is reporting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaState {
    pub tenant: String,
    pub class: ObjectClass,
    pub select: Selection,
    /// `$filter=id eq …`: the object indexes to report, sorted.
    pub filter: Option<Vec<u32>>,
    /// Initial round: report live objects in full, no removals.
    pub initial: bool,
    /// Report changes with USN greater than this.
    pub since: u64,
    /// USN when the round started: the next round's `since`.
    pub upto: u64,
    /// Next object position (index, or position in `filter`).
    pub cursor: u32,
    /// A large group's members continue after this packed member.
    pub member_after: Option<u32>,
    /// Pages served so far in this round (varies replay choices).
    pub page: u32,
    /// Emulator time the link was issued, in milliseconds: delta tokens expire.
    pub issued_ms: i64,
}

/// A plain list walk (`GET /users`, `/groups/{id}/members`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListState {
    pub tenant: String,
    pub class: ObjectClass,
    pub select: Selection,
    pub top: u32,
    pub cursor: u32,
    /// Listing the members of this group index, continuing after this packed member.
    pub group: Option<u32>,
    pub member_after: Option<u32>,
    /// Member listings mix classes: `$select` names, resolved per member class.
    pub member_select: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed state token")]
pub struct MalformedToken;

pub fn encode<T: Serialize>(state: &T) -> String {
    // serde_json of these plain structs cannot fail; an empty token would be rejected on the way back.
    let json = serde_json::to_vec(state).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

pub fn decode<T: DeserializeOwned>(token: &str) -> Result<T, MalformedToken> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| MalformedToken)?;
    serde_json::from_slice(&bytes).map_err(|_| MalformedToken)
}
