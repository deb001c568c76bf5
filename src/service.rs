//! What the API does with users, independent of HTTP: hash passwords, then
//! read and write through the store.

use crate::{
    domain::{EmailAddress, NewUser, ProfileChanges, UserId},
    hashing::{HashingError, PasswordHasher},
    store::{ListQuery, StoreError, UserRecord, UserStore, UserUpdate},
};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no user has id {0}")]
    NotFound(UserId),
    #[error("another user already has this email")]
    EmailTaken,
    #[error("the user store failed")]
    Store(#[source] StoreError),
    #[error("password hashing failed")]
    Hashing(#[from] HashingError),
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => Self::EmailTaken,
            other => Self::Store(other),
        }
    }
}

/// A page of users and, when more follow, the id to continue after.
#[derive(Debug)]
pub struct Page {
    pub users: Vec<UserRecord>,
    pub next_after: Option<UserId>,
}

#[derive(Clone)]
pub struct UserService {
    store: UserStore,
    hasher: PasswordHasher,
}

impl UserService {
    pub fn new(store: UserStore, hasher: PasswordHasher) -> Self {
        Self { store, hasher }
    }

    pub async fn create(&self, user: NewUser) -> Result<UserRecord, UserError> {
        let hash = self.hasher.hash(user.password).await?;
        Ok(self.store.insert(&user.name, &user.email, &hash).await?)
    }

    pub async fn get(&self, id: UserId) -> Result<UserRecord, UserError> {
        self.store.get(id).await?.ok_or(UserError::NotFound(id))
    }

    pub async fn list(
        &self,
        email: Option<EmailAddress>,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Page, UserError> {
        // One extra row tells whether another page follows, without a count.
        let mut users = self
            .store
            .list(ListQuery {
                email,
                after,
                limit: limit + 1,
            })
            .await?;
        let more = users.len() > limit as usize;
        users.truncate(limit as usize);
        let next_after = more
            .then(|| users.last().map(|user| UserId::from(user.id)))
            .flatten();
        Ok(Page { users, next_after })
    }

    pub async fn update(
        &self,
        id: UserId,
        changes: ProfileChanges,
    ) -> Result<UserRecord, UserError> {
        let password_hash = match changes.password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let update = UserUpdate {
            name: changes.name,
            email: changes.email,
            password_hash,
        };
        self.store
            .update(id, update)
            .await?
            .ok_or(UserError::NotFound(id))
    }

    pub async fn delete(&self, id: UserId) -> Result<(), UserError> {
        if self.store.delete(id).await? {
            Ok(())
        } else {
            Err(UserError::NotFound(id))
        }
    }
}
