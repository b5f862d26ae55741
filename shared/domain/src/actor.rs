//! Who acts: the authenticated user, as the authorizer vouched for them.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::FieldError;

/// The subject of the caller's token. Opaque to us, bounded and printable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        if s.is_empty() || s.chars().count() > Self::MAX_LEN || s.chars().any(char::is_control) {
            return Err(FieldError::new("sub", "must be 1–128 printable characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of one of the system's own workers (`system:<name>`), for events it causes.
    pub fn system(name: &str) -> Self {
        Self(format!("system:{name}"))
    }

    /// Whether this is one of the system's own actors (a worker), not a person.
    pub fn is_system(&self) -> bool {
        self.0.starts_with("system:")
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UserId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

/// A name fit for a feed ("Alice"). Falls back to the user id when the token has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 100;

    /// Trims, drops control characters and truncates: a display name never fails a request.
    pub fn new(s: &str) -> Self {
        let cleaned: String = s
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(Self::MAX_CHARS)
            .collect();
        Self(cleaned)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for DisplayName {
    fn from(s: String) -> Self {
        Self::new(&s)
    }
}

impl From<DisplayName> for String {
    fn from(n: DisplayName) -> String {
        n.0
    }
}

/// What a user may do. Unknown or missing roles are viewers: least privilege by default.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn from_claim(claim: Option<&str>) -> Self {
        match claim.map(str::trim) {
            Some("admin") => Self::Admin,
            Some("editor") => Self::Editor,
            _ => Self::Viewer,
        }
    }

    pub fn can_write(self) -> bool {
        self >= Self::Editor
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    pub id: UserId,
    pub name: DisplayName,
    #[serde(default)]
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_default_to_viewer() {
        assert_eq!(Role::from_claim(None), Role::Viewer);
        assert_eq!(Role::from_claim(Some("superuser")), Role::Viewer);
        assert_eq!(Role::from_claim(Some("editor")), Role::Editor);
        assert!(Role::Admin.can_write() && Role::Editor.can_write() && !Role::Viewer.can_write());
    }

    #[test]
    fn display_names_are_cleaned_not_refused() {
        assert_eq!(DisplayName::new("  Alice\u{7}  ").as_str(), "Alice");
        assert_eq!(
            DisplayName::new(&"é".repeat(300)).as_str().chars().count(),
            100
        );
    }

    #[test]
    fn user_ids_are_bounded() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"a".repeat(129)).is_err());
        assert!(UserId::parse("a\nb").is_err());
    }
}
