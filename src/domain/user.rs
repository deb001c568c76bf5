use chrono::{DateTime, Utc};

use super::{
    EmailAddress, ExternalId, Metadata, MetadataChange, Password, SearchPrefix, UserId, UserName,
};

/// A user as the service knows it, password hash aside. `name` and `email`
/// are as stored: users adopted from an older service may hold values that
/// today's rules would refuse, and they are still served.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    /// Moves forward with every write.
    pub updated_at: DateTime<Utc>,
    /// Starts at 1 and goes up by one with every change.
    pub version: i64,
    /// A disabled user's credentials are refused (after they are checked).
    pub disabled: bool,
    /// When the user's credentials last verified; `None` until they have.
    pub last_verified_at: Option<DateTime<Utc>>,
    /// The application's own data.
    pub metadata: Metadata,
    /// The user's id in another system, unique when set.
    pub external_id: Option<ExternalId>,
}

impl User {
    /// A user about to be created now, at version 1, with a fresh id made
    /// in the same second as its creation time (so ranges of creation times
    /// are ranges of ids).
    pub fn new(user: &NewUser) -> Self {
        let now = now_millis();
        Self {
            id: UserId::generate_at(now).unwrap_or_else(UserId::generate),
            name: user.name.as_str().to_owned(),
            email: user.email.as_str().to_owned(),
            created_at: now,
            updated_at: now,
            version: 1,
            disabled: user.disabled,
            last_verified_at: None,
            metadata: user.metadata.clone(),
            external_id: user.external_id.clone(),
        }
    }
}

/// The current time at the precision it is stored with (milliseconds), so a
/// value the service holds equals the one it would read back.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// Everything needed to create a user.
#[derive(Debug)]
pub struct NewUser {
    pub name: UserName,
    pub email: EmailAddress,
    pub password: Password,
    pub disabled: bool,
    pub metadata: Metadata,
    pub external_id: Option<ExternalId>,
}

/// The fields a replace (`PUT`) or patch (`PATCH`) sets; `None` leaves a field
/// as it is. A patch with no field set is refused before it gets here.
#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub name: Option<UserName>,
    pub email: Option<EmailAddress>,
    pub password: Option<Password>,
    pub disabled: Option<bool>,
    pub metadata: Option<MetadataChange>,
    /// `Some(None)` removes it.
    pub external_id: Option<Option<ExternalId>>,
}

/// The order of a listing, by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    OldestFirst,
    NewestFirst,
}

/// Which users a listing returns, in which order, and where its page
/// starts. Every filter narrows the others.
#[derive(Debug, Default)]
pub struct UserQuery {
    pub email: Option<EmailAddress>,
    pub disabled: Option<bool>,
    /// Names or emails starting with it.
    pub q: Option<SearchPrefix>,
    /// Created strictly after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created strictly before.
    pub created_before: Option<DateTime<Utc>>,
    /// Only these users.
    pub ids: Option<Vec<UserId>>,
    pub external_id: Option<ExternalId>,
    pub order: Order,
    /// The id the page starts after, in `order`.
    pub after: Option<UserId>,
    pub limit: u32,
    /// Count every user matching the filters.
    pub include_total: bool,
}
