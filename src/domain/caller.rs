use std::fmt::Write;

/// Who is asking: the SHA-256 digest of the API key the request presented,
/// or nobody in particular when authentication is disabled. The key itself
/// is never kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller(Option<[u8; 32]>);

impl Caller {
    pub fn with_key_digest(digest: [u8; 32]) -> Self {
        Self(Some(digest))
    }

    pub fn anonymous() -> Self {
        Self(None)
    }

    /// A stable, non-secret name for the caller, used to keep one caller's
    /// idempotency keys apart from another's.
    pub fn scope(&self) -> String {
        match self.0 {
            Some(digest) => digest.iter().fold(String::new(), |mut hex, byte| {
                let _ = write!(hex, "{byte:02x}");
                hex
            }),
            None => "anonymous".to_owned(),
        }
    }
}
