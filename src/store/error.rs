use mongodb::error::{Error, ErrorKind, WriteFailure};

/// Which unique value a write collided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicate {
    Email,
    ExternalId,
    /// Another unique index, such as `_id`'s.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a unique value is taken: {0:?}")]
    Duplicate(Duplicate),
    /// The database cannot be reached (down, restarting, no primary): worth
    /// retrying later, unlike other failures.
    #[error("the database is unavailable")]
    Unavailable(#[source] Error),
    /// A stored document is not in this service's format: one another
    /// service wrote, waiting for `user-api migrate`.
    #[error("a stored document is not in this service's format")]
    Unreadable(#[source] Error),
    #[error("database error")]
    Database(#[source] Error),
    #[error("cannot encode a document: {0}")]
    Encoding(String),
}

pub(super) const DUPLICATE_KEY: i32 = 11000;
const NAMESPACE_NOT_FOUND: i32 = 26;

/// Server error codes that mean "not now" rather than "never": the node is
/// unreachable, shutting down or not (or no longer) the primary.
const UNAVAILABLE_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// The server's message for a write or command error.
fn message(error: &Error) -> Option<&str> {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(&write.message),
        ErrorKind::Command(command) => Some(&command.message),
        _ => None,
    }
}

/// Which index a duplicate-key error names. MongoDB's message has long
/// read `E11000 duplicate key error collection: … index: <name> dup key:
/// …`; the index names are this service's own.
fn duplicate_of(error: &Error) -> Duplicate {
    let names = |index: &str| {
        message(error).is_some_and(|message| message.contains(&format!("index: {index} ")))
    };
    if names(super::users::EXTERNAL_ID_INDEX) {
        Duplicate::ExternalId
    } else if names(super::users::EMAIL_INDEX) {
        Duplicate::Email
    } else {
        Duplicate::Other
    }
}

fn code(error: &Error) -> Option<i32> {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(write.code),
        ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

pub(super) fn is_duplicate_key(error: &Error) -> bool {
    code(error) == Some(DUPLICATE_KEY)
}

/// The collection (or database) does not exist yet.
pub(super) fn is_namespace_missing(error: &Error) -> bool {
    code(error) == Some(NAMESPACE_NOT_FOUND)
}

impl From<Error> for StoreError {
    fn from(error: Error) -> Self {
        let unreachable = matches!(
            error.kind.as_ref(),
            ErrorKind::ServerSelection { .. }
                | ErrorKind::Io(_)
                | ErrorKind::ConnectionPoolCleared { .. }
        );
        if unreachable || code(&error).is_some_and(|code| UNAVAILABLE_CODES.contains(&code)) {
            Self::Unavailable(error)
        } else if matches!(error.kind.as_ref(), ErrorKind::BsonDeserialization(_)) {
            Self::Unreadable(error)
        } else if is_duplicate_key(&error) {
            Self::Duplicate(duplicate_of(&error))
        } else {
            Self::Database(error)
        }
    }
}
