//! Validated domain types. Each `parse` is the only way to build its type, so a
//! value that exists is valid and nothing downstream checks it again.

mod caller;
mod email;
mod external_id;
mod idempotency_key;
mod import;
mod metadata;
mod name;
mod password;
mod precondition;
mod search;
mod stored_hash;
mod text;
mod user;
mod user_id;
mod validation;

pub use caller::Caller;
pub use email::EmailAddress;
pub use external_id::ExternalId;
pub use idempotency_key::IdempotencyKey;
pub use import::{ImportFailure, ImportOutcome, ImportSecret, ImportUser};
pub use metadata::{Metadata, MetadataChange};
pub use name::UserName;
pub use password::Password;
pub use precondition::Precondition;
pub use search::{fold_name, SearchPrefix};
pub use stored_hash::{limits as hash_limits, StoredHash, BCRYPT_MAX_BYTES};
pub use text::invisible_beyond_bmp;
pub use user::{now_millis, NewUser, Order, ProfileChanges, User, UserQuery};
pub use user_id::UserId;
pub use validation::{FieldError, ValidationErrors};
