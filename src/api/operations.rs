//! Every operation's policy in one table: whether it needs an API key, which
//! rate-limit budget it draws from, and which errors it can answer with. The
//! edge applies the first two to each request through the route template it
//! matched; the spec documents the third.

use super::errors::ErrorCode::{self, *};

/// Which rate-limit budget a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Changes users: per client IP and per API key.
    Write,
    /// Checks credentials: per client IP.
    Verify,
    Free,
}

/// What the edge and the spec need to know about one operation.
#[derive(Debug)]
pub struct Operation {
    /// Its `operationId`.
    pub id: &'static str,
    /// Needs an API key: 401 `unauthorized`, checked first.
    pub authenticated: bool,
    pub budget: Budget,
    /// Takes a JSON body: 400 `malformed_json` or `validation_failed`, 413
    /// and 415.
    pub body: bool,
    /// Names a user by id in its path: 400 `invalid_id` and 404.
    pub user_path: bool,
    /// Reads or writes the database: 503 `unavailable`, and the deadline.
    pub database: bool,
    /// How many times `REQUEST_TIMEOUT_MS` the operation may take.
    pub deadline_factor: u32,
    /// Errors particular to this operation.
    pub errors: &'static [ErrorCode],
}

impl Operation {
    /// Every code the operation can answer with, in [`ErrorCode::ALL`]'s
    /// order.
    pub fn error_codes(&self) -> Vec<ErrorCode> {
        let mut codes = self.errors.to_vec();
        if self.authenticated {
            codes.push(Unauthorized);
        }
        if self.budget != Budget::Free {
            codes.push(RateLimited);
        }
        if self.body {
            codes.extend([
                ValidationFailed,
                MalformedJson,
                PayloadTooLarge,
                UnsupportedMediaType,
            ]);
        }
        if self.user_path {
            codes.extend([InvalidId, NotFound]);
        }
        if self.database {
            codes.extend([Unavailable, MigrationRequired, Timeout, Internal]);
        }
        ErrorCode::ALL
            .into_iter()
            .filter(|code| codes.contains(code))
            .collect()
    }
}

/// Ties an operation's error type to its policy.
pub trait Documented: Send + Sync + 'static {
    const OPERATION: &'static Operation;
}

macro_rules! operations {
    ($($marker:ident = $operation:expr;)*) => {
        $(
            pub enum $marker {}
            impl Documented for $marker {
                const OPERATION: &'static Operation = &$operation;
            }
        )*
        /// Every operation the API serves.
        pub const ALL: &[&Operation] = &[$(<$marker as Documented>::OPERATION),*];
    };
}

const USER: Operation = Operation {
    id: "",
    authenticated: true,
    budget: Budget::Free,
    body: false,
    user_path: false,
    database: true,
    deadline_factor: 1,
    errors: &[],
};

const OPERATIONS_ROUTE: Operation = Operation {
    id: "",
    authenticated: false,
    budget: Budget::Free,
    body: false,
    user_path: false,
    database: false,
    deadline_factor: 1,
    errors: &[],
};

operations! {
    CreateUser = Operation {
        id: "createUser",
        budget: Budget::Write,
        body: true,
        errors: &[
            ValidationFailed,
            EmailTaken,
            ExternalIdTaken,
            IdempotencyKeyReused,
            IdempotencyKeyInProgress,
            Busy,
        ],
        ..USER
    };
    ListUsers = Operation {
        id: "listUsers",
        errors: &[ValidationFailed],
        ..USER
    };
    GetUser = Operation {
        id: "getUser",
        user_path: true,
        errors: &[ValidationFailed],
        ..USER
    };
    ReplaceUser = Operation {
        id: "replaceUser",
        budget: Budget::Write,
        body: true,
        user_path: true,
        errors: &[EmailTaken, ExternalIdTaken, PreconditionFailed, PreconditionRequired, Busy],
        ..USER
    };
    PatchUser = Operation {
        id: "patchUser",
        budget: Budget::Write,
        body: true,
        user_path: true,
        errors: &[EmailTaken, ExternalIdTaken, PreconditionFailed, PreconditionRequired, Busy],
        ..USER
    };
    DeleteUser = Operation {
        id: "deleteUser",
        budget: Budget::Write,
        user_path: true,
        errors: &[ValidationFailed, PreconditionFailed, PreconditionRequired],
        ..USER
    };
    ImportUsers = Operation {
        id: "importUsers",
        budget: Budget::Write,
        body: true,
        // Up to 100 plaintext passwords to hash.
        deadline_factor: 4,
        errors: &[IdempotencyKeyReused, IdempotencyKeyInProgress],
        ..USER
    };
    VerifyUser = Operation {
        id: "verifyUser",
        budget: Budget::Verify,
        body: true,
        errors: &[InvalidCredentials, UserDisabled, TooManyFailures, Busy],
        ..USER
    };
    ClearLockout = Operation {
        id: "clearLockout",
        budget: Budget::Write,
        user_path: true,
        ..USER
    };
    Ping = Operation { id: "ping", ..OPERATIONS_ROUTE };
    Health = Operation { id: "health", ..OPERATIONS_ROUTE };
    Metrics = Operation { id: "metrics", ..OPERATIONS_ROUTE };
}

/// The policy of the operation with this `operationId`.
pub fn by_id(id: &str) -> Option<&'static Operation> {
    ALL.iter().copied().find(|operation| operation.id == id)
}

#[cfg(test)]
mod tests {
    use poem_openapi::OpenApi;

    use super::*;

    /// The table and the handlers describe the same operations, and agree
    /// on which take a body.
    #[test]
    fn every_served_operation_has_a_policy_and_no_other() {
        let mut served = Vec::new();
        for api in super::super::Apis::meta() {
            for path in api.paths {
                for operation in path.operations {
                    let id = operation.operation_id.expect("every operation has an id");
                    let policy = by_id(id).unwrap_or_else(|| panic!("no policy for {id}"));
                    assert_eq!(
                        policy.body,
                        operation.request.is_some(),
                        "{id}: body in the policy and the handler"
                    );
                    assert_eq!(
                        policy.user_path,
                        path.path.contains(":id") || path.path.contains("{id}"),
                        "{id}: the id in the path"
                    );
                    assert_eq!(
                        policy.authenticated,
                        !operation.security.is_empty(),
                        "{id}: authentication in the policy and the handler"
                    );
                    served.push(id);
                }
            }
        }
        let mut listed: Vec<&str> = ALL.iter().map(|operation| operation.id).collect();
        served.sort_unstable();
        listed.sort_unstable();
        // No id twice: the edge finds an operation's policy by its id.
        assert!(
            listed.windows(2).all(|pair| pair[0] != pair[1]),
            "{listed:?}"
        );
        assert_eq!(served, listed);
    }
}
