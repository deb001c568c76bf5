//! Validated domain types. Each `parse` is the only way to build its type, so a
//! value that exists is valid and nothing downstream checks it again.

mod email;
mod name;
mod password;
mod text;
mod user;
mod user_id;
mod validation;

pub use email::EmailAddress;
pub use name::UserName;
pub use password::{Password, PasswordHash};
pub use user::{NewUser, ProfileChanges};
pub use user_id::UserId;
pub use validation::{FieldError, ValidationErrors};
