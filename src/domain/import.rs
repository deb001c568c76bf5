//! Users brought in from elsewhere (`POST /user/import`), each with its own
//! outcome.

use chrono::{DateTime, Utc};

use super::{
    EmailAddress, ExternalId, Metadata, Password, StoredHash, UserId, UserName, ValidationErrors,
};

/// How an imported user proves its password: a new one, hashed here, or a
/// hash another system made, kept as it is until the user's next login.
#[derive(Debug)]
pub enum ImportSecret {
    Password(Password),
    Hash(StoredHash),
}

/// One user to import, valid.
#[derive(Debug)]
pub struct ImportUser {
    pub name: UserName,
    pub email: EmailAddress,
    pub secret: ImportSecret,
    /// The id to keep; a fresh one (at `created_at`'s second) otherwise.
    pub id: Option<UserId>,
    /// When the user was created elsewhere; from the id, or now, otherwise.
    pub created_at: Option<DateTime<Utc>>,
    pub metadata: Metadata,
    pub external_id: Option<ExternalId>,
}

/// Why one user of an import was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportFailure {
    Invalid(ValidationErrors),
    /// Another user has the email.
    EmailTaken,
    /// The id belongs to a user with another email.
    IdTaken,
    /// Another user has the external id.
    ExternalIdTaken,
    /// Password hashing was saturated; the item may be sent again.
    Busy,
}

/// What became of one user of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Created(UserId),
    /// A user with this id and email was already stored: a re-run.
    Existing(UserId),
    Failed(ImportFailure),
}
