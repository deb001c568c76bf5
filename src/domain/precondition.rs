/// What a write requires of the stored user's version. Every write also
/// requires the user to exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Whatever the version is.
    #[default]
    Unconditional,
    /// One of these versions; an empty list matches nothing.
    OneOf(Vec<i64>),
}
