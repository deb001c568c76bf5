use mongodb::error::{Error, ErrorKind, WriteFailure};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another user already has this email")]
    EmailTaken,
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
            Self::EmailTaken
        } else {
            Self::Database(error)
        }
    }
}
