use super::{EmailAddress, Password, UserName};

/// Everything needed to create a user.
#[derive(Debug)]
pub struct NewUser {
    pub name: UserName,
    pub email: EmailAddress,
    pub password: Password,
}

/// The fields a replace (`PUT`) or patch (`PATCH`) sets; `None` leaves a field
/// as it is. A patch with no field set is refused before it gets here.
#[derive(Debug, Default)]
pub struct ProfileChanges {
    pub name: Option<UserName>,
    pub email: Option<EmailAddress>,
    pub password: Option<Password>,
}
