//! Object ids derived from (tenant key, class, index) and back, so a million-object directory needs no
//! id → index map. The 64-bit payload is a Feistel permutation (looks random, is invertible); the rest
//! of the GUID is a keyed check, so a foreign or made-up GUID decodes to nothing.

use uuid::Uuid;

use entrasync_model::ObjectClass;

/// A position in one of a tenant's three object vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub class: ObjectClass,
    pub index: u32,
}

impl ObjectRef {
    pub fn new(class: ObjectClass, index: u32) -> Self {
        Self { class, index }
    }

    /// Packed form used in membership vectors: class in the top two bits.
    pub fn pack(self) -> u32 {
        let tag = match self.class {
            ObjectClass::User => 0u32,
            ObjectClass::Group => 1,
            ObjectClass::Device => 2,
        };
        (tag << 30) | (self.index & INDEX_MASK)
    }

    pub fn unpack(packed: u32) -> Self {
        let class = match packed >> 30 {
            0 => ObjectClass::User,
            1 => ObjectClass::Group,
            _ => ObjectClass::Device,
        };
        Self { class, index: packed & INDEX_MASK }
    }
}

/// Largest index a packed reference can hold (2^30 - 1 objects per class).
pub const INDEX_MASK: u32 = (1 << 30) - 1;

pub fn mix64(mut x: u64) -> u64 {
    // splitmix64 finaliser: a fast, well-distributed hash of one word.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn round_fn(key: u64, round: u64, half: u32) -> u32 {
    (mix64(key ^ round.wrapping_mul(0xA24B_AED4_963E_E407) ^ u64::from(half)) >> 16) as u32
}

fn permute(key: u64, value: u64) -> u64 {
    let (mut left, mut right) = ((value >> 32) as u32, value as u32);
    for round in 0..4 {
        let next = left ^ round_fn(key, round, right);
        left = right;
        right = next;
    }
    (u64::from(left) << 32) | u64::from(right)
}

fn unpermute(key: u64, value: u64) -> u64 {
    let (mut left, mut right) = ((value >> 32) as u32, value as u32);
    for round in (0..4).rev() {
        let prev = right ^ round_fn(key, round, left);
        right = left;
        left = prev;
    }
    (u64::from(left) << 32) | u64::from(right)
}

fn class_tag(class: ObjectClass) -> u64 {
    match class {
        ObjectClass::User => 1,
        ObjectClass::Group => 2,
        ObjectClass::Device => 3,
    }
}

/// Encodes and decodes the ids of one tenant.
#[derive(Debug, Clone, Copy)]
pub struct IdCodec {
    key: u64,
}

impl IdCodec {
    pub fn new(key: u64) -> Self {
        Self { key }
    }

    pub fn encode(&self, obj: ObjectRef) -> Uuid {
        let payload = permute(self.key, (class_tag(obj.class) << 32) | u64::from(obj.index));
        let check = mix64(self.key ^ payload);
        let mut b = [0u8; 16];
        b[0..6].copy_from_slice(&payload.to_be_bytes()[2..8]);
        // Version-4 and RFC 4122 variant bits, like the GUIDs Entra hands out.
        b[6] = 0x40 | ((payload >> 60) as u8 & 0x0f);
        b[7] = (payload >> 52) as u8;
        b[8] = 0x80 | ((payload >> 48) as u8 & 0x0f);
        b[9..16].copy_from_slice(&check.to_be_bytes()[1..8]);
        Uuid::from_bytes(b)
    }

    pub fn decode(&self, id: &Uuid) -> Option<ObjectRef> {
        let b = id.as_bytes();
        let mut low = [0u8; 8];
        low[2..8].copy_from_slice(&b[0..6]);
        let payload = u64::from_be_bytes(low)
            | (u64::from(b[6] & 0x0f) << 60)
            | (u64::from(b[7]) << 52)
            | (u64::from(b[8] & 0x0f) << 48);
        let check = mix64(self.key ^ payload).to_be_bytes();
        if b[9..16] != check[1..8] || b[6] & 0xf0 != 0x40 || b[8] & 0xf0 != 0x80 {
            return None;
        }
        let plain = unpermute(self.key, payload);
        let class = match plain >> 32 {
            1 => ObjectClass::User,
            2 => ObjectClass::Group,
            3 => ObjectClass::Device,
            _ => return None,
        };
        Some(ObjectRef { class, index: plain as u32 })
    }

    pub fn parse(&self, text: &str) -> Option<ObjectRef> {
        Uuid::parse_str(text.trim()).ok().and_then(|id| self.decode(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_foreign_guids() {
        let codec = IdCodec::new(42);
        for class in ObjectClass::ALL {
            for index in [0u32, 1, 7, 999_999, INDEX_MASK] {
                let obj = ObjectRef::new(class, index);
                let id = codec.encode(obj);
                assert_eq!(id.get_version_num(), 4);
                assert_eq!(codec.decode(&id), Some(obj));
                assert_eq!(IdCodec::new(43).decode(&id), None, "another tenant's key must not decode it");
            }
        }
        assert_eq!(codec.parse("25dcffff-959e-4ece-9973-e5d9b800e8cc"), None);
        assert_ne!(
            codec.encode(ObjectRef::new(ObjectClass::User, 1)),
            codec.encode(ObjectRef::new(ObjectClass::User, 2))
        );
    }

    #[test]
    fn packed_refs_keep_class_and_index() {
        for class in ObjectClass::ALL {
            let r = ObjectRef::new(class, 123_456);
            assert_eq!(ObjectRef::unpack(r.pack()), r);
        }
    }
}
