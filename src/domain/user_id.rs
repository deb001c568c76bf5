use std::fmt;

use chrono::{DateTime, Utc};
use mongodb::bson::oid::ObjectId;

/// A user's id: a MongoDB ObjectId, written on the wire as 24 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(ObjectId);

impl UserId {
    pub const PATTERN: &'static str = "^[0-9a-fA-F]{24}$";

    /// A fresh id. ObjectIds start with their creation time, so ids from one
    /// process sort in creation order.
    pub fn generate() -> Self {
        Self(ObjectId::new())
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() != 24 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("must be a 24-character hexadecimal id".into());
        }
        ObjectId::parse_str(raw)
            .map(Self)
            .map_err(|_| "must be a 24-character hexadecimal id".into())
    }

    /// A fresh id whose timestamp is `time` (to the second), so that ids
    /// keep following creation times for users created elsewhere, earlier.
    /// `None` when `time` falls outside what an ObjectId can hold (1970 to
    /// 2106).
    pub fn generate_at(time: DateTime<Utc>) -> Option<Self> {
        let seconds = u32::try_from(time.timestamp()).ok()?;
        let mut bytes = ObjectId::new().bytes();
        bytes[..4].copy_from_slice(&seconds.to_be_bytes());
        Some(Self::from_bytes(bytes))
    }

    /// When the id was made, to the second: ObjectIds start with it.
    pub fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0.timestamp().timestamp_millis() / 1000, 0)
            .unwrap_or_default()
    }

    pub fn from_bytes(bytes: [u8; 12]) -> Self {
        Self(ObjectId::from_bytes(bytes))
    }

    pub fn bytes(&self) -> [u8; 12] {
        self.0.bytes()
    }

    pub fn object_id(&self) -> ObjectId {
        self.0
    }
}

impl From<ObjectId> for UserId {
    fn from(id: ObjectId) -> Self {
        Self(id)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_hex_and_normalizes_case() {
        let id = UserId::parse("65A1B2C3D4E5F60718293A4B").unwrap();
        assert_eq!(id.to_string(), "65a1b2c3d4e5f60718293a4b");
    }

    #[test]
    fn rejects_anything_but_24_hex_digits() {
        for raw in [
            "",
            "65a1b2c3d4e5f60718293a4",
            "65a1b2c3d4e5f60718293a4b0",
            "65a1b2c3d4e5f60718293a4g",
            " 65a1b2c3d4e5f60718293a4b",
            "+5a1b2c3d4e5f60718293a4b",
            "６5a1b2c3d4e5f60718293a4",
        ] {
            assert!(UserId::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn ids_carry_their_creation_second() {
        let time = DateTime::parse_from_rfc3339("2021-03-04T05:06:07.890Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = UserId::generate_at(time).unwrap();
        assert_eq!(id.created_at().to_rfc3339(), "2021-03-04T05:06:07+00:00");
        let flask = UserId::parse("6b0a2981e83f4cfa13537ef0").unwrap();
        assert_eq!(flask.created_at().timestamp(), 0x6b0a2981);
        let too_early = DateTime::parse_from_rfc3339("1969-12-31T23:59:59Z").unwrap();
        assert!(UserId::generate_at(too_early.with_timezone(&Utc)).is_none());
    }

    #[test]
    fn generated_ids_increase() {
        let a = UserId::generate();
        let b = UserId::generate();
        assert!(a < b);
    }
}
