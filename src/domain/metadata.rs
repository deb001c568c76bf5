//! The application's own data on a user (Auth0's `app_metadata`, Kratos'
//! `metadata_admin`): a JSON object, bounded so that it stays small and
//! storable as it is.

use serde_json::{Map, Value};

/// A valid metadata object: at most [`Metadata::MAX_BYTES`] serialized,
/// nested at most [`Metadata::MAX_DEPTH`] levels (the object itself is the
/// first), every key 1 to 64 characters of `A-Z a-z 0-9 _ -` (no `.` or
/// `$`, which MongoDB reads as paths and operators), every number an
/// integer that fits 64 bits or a floating-point one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Metadata(Map<String, Value>);

/// Changes to a user's metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataChange {
    /// `PUT`: the whole object.
    Replace(Metadata),
    /// `PATCH`: top-level keys set to a value, or removed when `None`;
    /// nested objects are replaced, not merged.
    Merge(Vec<(String, Option<Value>)>),
}

impl Metadata {
    pub const MAX_BYTES: usize = 4096;
    pub const MAX_DEPTH: usize = 5;
    pub const MAX_KEY_CHARS: usize = 64;
    /// [`Metadata`]'s key rule, for the spec.
    pub const KEY_PATTERN: &'static str = "^[A-Za-z0-9_-]{1,64}$";

    pub fn parse(value: Map<String, Value>) -> Result<Self, String> {
        check_object(&value, 1)?;
        let metadata = Self(value);
        metadata.check_size()?;
        Ok(metadata)
    }

    /// The keys and values of a `PATCH`, each checked as it would be in an
    /// object (a `null` removes its key).
    pub fn parse_merge(value: Map<String, Value>) -> Result<MetadataChange, String> {
        let mut changes = Vec::with_capacity(value.len());
        for (key, value) in value {
            check_key(&key)?;
            match value {
                Value::Null => changes.push((key, None)),
                value => {
                    check_value(&key, &value, 2)?;
                    changes.push((key, Some(value)));
                }
            }
        }
        Ok(MetadataChange::Merge(changes))
    }

    /// This object with `changes` applied, checked whole again.
    pub fn merged(&self, changes: &[(String, Option<Value>)]) -> Result<Self, String> {
        let mut merged = self.0.clone();
        for (key, value) in changes {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        let merged = Self(merged);
        merged.check_size()?;
        Ok(merged)
    }

    fn check_size(&self) -> Result<(), String> {
        let size = serde_json::to_vec(&self.0).map_or(usize::MAX, |bytes| bytes.len());
        if size > Self::MAX_BYTES {
            return Err(format!(
                "must be at most {} bytes serialized as JSON (got {size})",
                Self::MAX_BYTES
            ));
        }
        Ok(())
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Metadata as stored, trusted: it was checked when it was written.
    pub fn from_stored(value: Map<String, Value>) -> Self {
        Self(value)
    }
}

fn check_key(key: &str) -> Result<(), String> {
    let chars = key.chars().count();
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if chars == 0 || chars > Metadata::MAX_KEY_CHARS || !key.chars().all(allowed) {
        return Err(format!(
            "key `{}` must be 1 to {} characters of A-Z, a-z, 0-9, `_` and `-`",
            key.chars().take(80).collect::<String>(),
            Metadata::MAX_KEY_CHARS
        ));
    }
    Ok(())
}

fn check_object(object: &Map<String, Value>, depth: usize) -> Result<(), String> {
    for (key, value) in object {
        check_key(key)?;
        check_value(key, value, depth + 1)?;
    }
    Ok(())
}

/// `value` found at nesting level `depth` (the metadata object's own values
/// are at level 2).
fn check_value(key: &str, value: &Value, depth: usize) -> Result<(), String> {
    let too_deep = || format!("`{key}` nests deeper than {} levels", Metadata::MAX_DEPTH);
    match value {
        Value::Object(object) => {
            if depth > Metadata::MAX_DEPTH {
                return Err(too_deep());
            }
            check_object(object, depth)
        }
        Value::Array(items) => {
            if depth > Metadata::MAX_DEPTH {
                return Err(too_deep());
            }
            items
                .iter()
                .try_for_each(|item| check_value(key, item, depth + 1))
        }
        Value::Number(number) if number.as_i64().is_none() && number.as_f64().is_none() => Err(
            format!("`{key}` holds a number that fits neither 64 bits nor a double"),
        ),
        Value::Number(number) if number.is_u64() && number.as_i64().is_none() => Err(format!(
            "`{key}` holds an integer above 9223372036854775807, which would lose precision"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<Metadata, String> {
        match value {
            Value::Object(map) => Metadata::parse(map),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn accepts_ordinary_application_data() {
        let ok = json!({ "plan": "pro", "seats": 5, "ratio": 0.5, "flags": [true, null],
                         "billing": { "vat-id": "DE1", "address": { "city": "Köln" } } });
        assert!(parse(ok).is_ok());
        assert!(parse(json!({})).is_ok());
    }

    #[test]
    fn keys_must_be_plain_names() {
        for key in ["", "a.b", "$set", "has space", "ü", &"k".repeat(65)] {
            let err = parse(json!({ key: 1 })).unwrap_err();
            assert!(err.contains("key"), "{key:?}: {err}");
            let nested = parse(json!({ "ok": { key: 1 } }));
            assert!(nested.is_err(), "nested {key:?}");
        }
        assert!(parse(json!({ "k".repeat(64): 1 })).is_ok());
    }

    #[test]
    fn depth_counts_the_object_itself_as_the_first_level() {
        let five = json!({ "a": { "b": { "c": { "d": { "e": 1 } } } } });
        assert!(parse(five).is_ok());
        let six = json!({ "a": { "b": { "c": { "d": { "e": { "f": 1 } } } } } });
        assert!(parse(six).unwrap_err().contains("deeper"));
        let arrays = json!({ "a": [[[[1]]]] });
        assert!(parse(arrays).is_ok());
        assert!(parse(json!({ "a": [[[[[1]]]]] })).is_err());
    }

    #[test]
    fn size_is_measured_serialized() {
        let fits = "x".repeat(4096 - r#"{"k":""}"#.len());
        assert!(parse(json!({ "k": fits })).is_ok());
        let over = format!("{fits}x");
        assert!(parse(json!({ "k": over })).unwrap_err().contains("4096"));
    }

    #[test]
    fn integers_past_64_bits_are_refused() {
        assert!(parse(json!({ "n": 9_223_372_036_854_775_807_i64 })).is_ok());
        assert!(parse(json!({ "n": 9_223_372_036_854_775_808_u64 })).is_err());
    }

    #[test]
    fn a_merge_sets_removes_and_replaces_nested_objects_whole() {
        let base = parse(json!({ "a": 1, "b": { "x": 1, "y": 2 }, "c": 3 })).unwrap();
        let Value::Object(patch) = json!({ "a": null, "b": { "x": 9 }, "d": 4 }) else {
            unreachable!()
        };
        let MetadataChange::Merge(changes) = Metadata::parse_merge(patch).unwrap() else {
            unreachable!()
        };
        let merged = base.merged(&changes).unwrap();
        assert_eq!(
            Value::Object(merged.as_map().clone()),
            json!({ "b": { "x": 9 }, "c": 3, "d": 4 })
        );
    }
}
