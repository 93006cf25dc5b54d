//! Values in Postgres' binary format that tokio-postgres has no type for: JSON text we already hold as
//! bytes (sent as `jsonb` without parsing and re-serialising it) and labels of our enum types (for
//! binary COPY, which needs a typed value per column).

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, IsNull, Kind, ToSql, Type};

/// A JSON text, sent as `jsonb` or `json` (the `mapped` column, V58). Postgres checks it on arrival, so
/// text that is not JSON is refused with an error (the statement fails, nothing is stored), never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonText(Vec<u8>);

impl std::fmt::Debug for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonText({})", String::from_utf8_lossy(&self.0))
    }
}

impl JsonText {
    /// Wraps bytes that hold one JSON text (e.g. the canonical form the marker was computed over).
    pub fn from_json_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// jsonb's binary format: a version byte (1), then the JSON text.
const JSONB_VERSION: u8 = 1;

impl ToSql for JsonText {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // json's binary format is the text alone.
        if *ty == Type::JSONB {
            out.put_u8(JSONB_VERSION);
        }
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}

/// The label of a Postgres enum value (e.g. `object_class`); its binary format is the label's text.
#[derive(Debug, Clone, Copy)]
pub struct EnumLabel<'a>(pub &'a str);

impl ToSql for EnumLabel<'_> {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(ty.kind(), Kind::Enum(_))
    }

    to_sql_checked!();
}
