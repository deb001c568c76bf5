//! Request fields and parameters as they arrive: raw text, documented in the
//! spec by the domain rule that will parse it. Parsing happens in one place,
//! the domain, so every rejection gets the same clear, field-named message.

use std::{borrow::Cow, marker::PhantomData, sync::LazyLock};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use poem::Request;

use crate::domain::{
    invisible_beyond_bmp, EmailAddress, ExternalId, IdempotencyKey, Password, UserId, UserName,
    ValidationErrors,
};

/// How a field or parameter is described in the spec.
pub trait FieldRules: Send + Sync + 'static {
    fn schema() -> MetaSchema;
}

/// The unparsed text of a field or parameter whose rules are `R`.
pub struct Raw<R> {
    text: String,
    rules: PhantomData<R>,
}

impl<R> Raw<R> {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

impl<R: FieldRules> Type for Raw<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        Cow::Borrowed("string")
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(R::schema()))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.text)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.text))
    }
}

impl<R: FieldRules> ParseFromParameter for Raw<R> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(value.to_owned().into())
    }
}

impl<R: FieldRules> ParseFromJSON for Raw<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(text.into()),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl<R: FieldRules> ToJSON for Raw<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.text.clone()))
    }
}

impl<R> From<String> for Raw<R> {
    fn from(text: String) -> Self {
        Self {
            text,
            rules: PhantomData,
        }
    }
}

impl<'de, R> Deserialize<'de> for Raw<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

/// The unparsed text of a field that may be `null`, whose rules are `R`;
/// in a body as `Option<RawNullable<R>>`, with [`present`]: absent is
/// `None`, `null` is `Some(RawNullable(None))`.
pub struct RawNullable<R>(Option<Raw<R>>);

impl<R> RawNullable<R> {
    pub fn into_option(self) -> Option<Raw<R>> {
        self.0
    }
}

impl<R: FieldRules> Type for RawNullable<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        Cow::Borrowed("string")
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            nullable: true,
            ..R::schema()
        }))
    }

    fn as_raw_value(&self) -> Option<&String> {
        self.0.as_ref().map(|raw| &raw.text)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(self.0.iter().map(|raw| &raw.text))
    }
}

impl<R: FieldRules> ParseFromJSON for RawNullable<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Ok(Self(None)),
            Some(Value::String(text)) => Ok(Self(Some(text.into()))),
            Some(other) => Err(ParseError::expected_type(other)),
        }
    }
}

impl<R: FieldRules> ToJSON for RawNullable<R> {
    fn to_json(&self) -> Option<Value> {
        Some(
            self.0
                .as_ref()
                .map_or(Value::Null, |raw| Value::String(raw.text.clone())),
        )
    }
}

impl<'de, R> Deserialize<'de> for RawNullable<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<String>::deserialize(deserializer).map(|text| Self(text.map(Raw::from)))
    }
}

/// A JSON object as it arrived, for `metadata`: free-form values under the
/// rules [`Metadata`] checks.
pub struct RawObject(pub Map<String, Value>);

impl Type for RawObject {
    const IS_REQUIRED: bool = true;
    type RawValueType = Map<String, Value>;
    type RawElementValueType = Map<String, Value>;

    fn name() -> Cow<'static, str> {
        Cow::Borrowed("object")
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(metadata_schema(
            "The application's own data: a JSON object of at most 4096 bytes serialized, nested \
             at most 5 levels (the object itself is the first), every key 1 to 64 characters of \
             A-Z, a-z, 0-9, `_` and `-` (no `.` or `$`), every number an integer within 64 \
             bits or a floating-point one.",
        )))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

/// An object with free-form values: a map in generated SDKs.
pub fn metadata_schema(description: &'static str) -> MetaSchema {
    MetaSchema {
        description: Some(description),
        additional_properties: Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY)))),
        example: Some(serde_json::json!({ "plan": "pro", "seats": 5 })),
        ..MetaSchema::new("object")
    }
}

impl ParseFromJSON for RawObject {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Object(map)) => Ok(Self(map)),
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl ToJSON for RawObject {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Object(self.0.clone()))
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Self)
    }
}

/// For optional body fields: absent means "leave unchanged", but an explicit
/// `null` is refused like any other value of the wrong type.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

fn string_schema(description: &'static str, example: &str) -> MetaSchema {
    MetaSchema {
        description: Some(description),
        example: Some(Value::String(example.to_owned())),
        ..MetaSchema::new("string")
    }
}

pub enum NameRules {}

fn name_description() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "Display name. Surrounding whitespace is trimmed; what remains must be 1 to 100 \
             characters and start with a visible character. Control characters, format \
             characters (Unicode Cf: zero-width characters, bidi controls, the byte order \
             mark) and line or paragraph separators are refused anywhere. The pattern lists \
             those of the Basic Multilingual Plane; beyond it, {} are refused too. Any script \
             is accepted.",
            invisible_beyond_bmp()
        )
    });
    &TEXT
}

impl FieldRules for NameRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            pattern: Some(UserName::pattern().to_owned()),
            ..string_schema(name_description(), "Ada Lovelace")
        }
    }
}

pub enum EmailRules {}

impl FieldRules for EmailRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            max_length: Some(EmailAddress::MAX_CHARS),
            pattern: Some(EmailAddress::pattern().to_owned()),
            ..string_schema(
                "Email address, unique across users regardless of case. Surrounding whitespace is \
                 trimmed. Internationalized addresses are accepted (letters of the Latin, Greek, \
                 Cyrillic, CJK, kana and Hangul scripts, in the local part and in the domain); \
                 the address is stored normalized: the local part in Unicode NFC, lowercased, and \
                 the domain in Unicode, lowercased (`User@XN--BCHER-KVA.DE` is stored as \
                 `user@bücher.de`). The local part takes up to 64 characters and the domain \
                 needs a dot; quoted local parts and IP-address domains are refused, and an \
                 `xn--` label must be valid punycode.",
                "ada@example.com",
            )
        }
    }
}

/// An email to look up: compared after normalizing, not validated, so a
/// user whose address predates today's rules is still found.
pub enum EmailLookupRules {}

impl FieldRules for EmailLookupRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            max_length: Some(EmailAddress::MAX_CHARS),
            pattern: Some(EmailAddress::lookup_pattern().to_owned()),
            ..string_schema(
                "Email address, compared after the same normalization as stored addresses \
                 (Unicode NFC, lowercased, domain in Unicode): one `@` with text on each side, \
                 no whitespace inside.",
                "ada@example.com",
            )
        }
    }
}

pub enum PasswordRules {}

impl FieldRules for PasswordRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            format: Some("password"),
            min_length: Some(Password::MIN_CHARS),
            max_length: Some(Password::MAX_BYTES),
            pattern: Some(Password::pattern().to_owned()),
            ..string_schema(
                "Password: at least 8 characters and at most 72 bytes of UTF-8 (bcrypt's limit; \
                 longer input is refused, never truncated), with at least one lowercase letter \
                 (a-z), one uppercase letter (A-Z), one digit (0-9) and one other character. It \
                 is stored only as a bcrypt hash and never returned.",
                "Password@123",
            )
        }
    }
}

pub enum ExternalIdRules {}

impl FieldRules for ExternalIdRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            min_length: Some(1),
            max_length: Some(ExternalId::MAX_CHARS),
            pattern: Some(ExternalId::PATTERN.to_owned()),
            ..string_schema(
                "The user's id in another system: 1 to 255 characters, no control characters. \
                 Unique among users when set, compared exactly; `null` removes it.",
                "crm-000123",
            )
        }
    }
}

pub enum UserIdRules {}

impl FieldRules for UserIdRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            min_length: Some(24),
            max_length: Some(24),
            pattern: Some(UserId::PATTERN.to_owned()),
            ..string_schema(
                "The user's id: 24 hexadecimal digits.",
                "65a1b2c3d4e5f60718293a4b",
            )
        }
    }
}

pub enum AttemptRules {}

impl FieldRules for AttemptRules {
    fn schema() -> MetaSchema {
        MetaSchema {
            format: Some("password"),
            ..string_schema(
                "The password to check. It is compared, not validated: a password that breaks \
                 today's policy simply does not match.",
                "Password@123",
            )
        }
    }
}

/// The `Idempotency-Key` header's name.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The `Idempotency-Key` a request carries, if any. Read from the request
/// itself: the header extractor skips a value that is not visible ASCII,
/// and such a key is refused, not ignored; so is a key sent twice.
pub fn idempotency_key(request: &Request) -> Result<Option<IdempotencyKey>, ValidationErrors> {
    let mut values = request.headers().get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ValidationErrors::single(
            IDEMPOTENCY_KEY,
            "must be sent once",
        ));
    }
    IdempotencyKey::parse(value.to_str().unwrap_or_default())
        .map(Some)
        .map_err(|message| ValidationErrors::single(IDEMPOTENCY_KEY, message))
}

pub enum IdempotencyKeyRules {}

impl FieldRules for IdempotencyKeyRules {
    fn schema() -> MetaSchema {
        // No example: Swagger UI would pre-fill it, and every "Try it out"
        // would then send the same key.
        MetaSchema {
            description: Some("1 to 255 visible ASCII characters, such as a UUID."),
            min_length: Some(1),
            max_length: Some(IdempotencyKey::MAX_CHARS),
            pattern: Some(IdempotencyKey::PATTERN.to_owned()),
            ..MetaSchema::new("string")
        }
    }
}
