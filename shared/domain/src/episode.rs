//! The episode: its validated fields, its status state machine and the rules for changing it.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::Date;
use time::macros::format_description;

use crate::actor::{Actor, DisplayName, UserId};
use crate::ids::EpisodeId;
use crate::time::Timestamp;
use crate::validation::FieldError;

fn is_single_line(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// An episode title: trimmed, 1–200 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Title(String);

impl Title {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        // The limit counts what was sent, before trimming, as the contract's `maxLength` does.
        if s.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new("title", "must be at most 200 characters"));
        }
        let t = s.trim();
        if t.is_empty() {
            return Err(FieldError::new("title", "must not be empty"));
        }
        if !is_single_line(s) {
            return Err(FieldError::new(
                "title",
                "must not contain control characters",
            ));
        }
        Ok(Self(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text, at most 5,000 characters; line breaks and tabs allowed, other controls not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 5_000;

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        if s.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "description",
                "must be at most 5000 characters",
            ));
        }
        if s.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(FieldError::new(
                "description",
                "must not contain control characters other than line breaks and tabs",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The series an episode belongs to: trimmed, 1–200 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SeriesName(String);

impl SeriesName {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Title::parse(s)
            .map(|t| Self(t.0))
            .map_err(|e| FieldError::new("series", e.message))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_conversions {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = FieldError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_newtype_conversions!(Title, Description, SeriesName);

/// A season or episode number: 1 to 100,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u32")]
pub struct PositiveNumber(u32);

impl PositiveNumber {
    pub const MAX: u32 = 100_000;

    pub fn new(n: u64) -> Result<Self, FieldError> {
        match u32::try_from(n) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(FieldError::new("", "must be an integer from 1 to 100000")),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for PositiveNumber {
    type Error = FieldError;
    fn try_from(n: u64) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl From<PositiveNumber> for u32 {
    fn from(n: PositiveNumber) -> u32 {
        n.0
    }
}

/// The planned air date, a calendar date (`YYYY-MM-DD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AirDate(Date);

impl AirDate {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let format = format_description!("[year]-[month]-[day]");
        Date::parse(s, &format)
            .map(Self)
            .map_err(|_| FieldError::new("air_date", "must be a date as YYYY-MM-DD"))
    }
}

impl fmt::Display for AirDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!("[year]-[month]-[day]");
        match self.0.format(&format) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl TryFrom<String> for AirDate {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<AirDate> for String {
    fn from(d: AirDate) -> String {
        d.to_string()
    }
}

/// Where an episode is in production.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeStatus {
    Draft,
    InProduction,
    InReview,
    Published,
    Archived,
}

impl EpisodeStatus {
    pub const ALL: [Self; 5] = [
        Self::Draft,
        Self::InProduction,
        Self::InReview,
        Self::Published,
        Self::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::InProduction => "in_production",
            Self::InReview => "in_review",
            Self::Published => "published",
            Self::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "status",
                    "must be one of draft, in_production, in_review, published, archived",
                )
            })
    }

    /// The one table of legal moves: each step forward, plus a review sending work back.
    pub fn can_move_to(self, to: Self) -> bool {
        use EpisodeStatus::*;
        matches!(
            (self, to),
            (Draft, InProduction)
                | (InProduction, InReview)
                | (InReview, Published)
                | (InReview, InProduction)
                | (Published, Archived)
        )
    }

    /// The statuses from which `self` may be reached: what a conditional write checks.
    pub fn reachable_from(self) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|from| from.can_move_to(self))
            .collect()
    }
}

impl fmt::Display for EpisodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Optimistic concurrency: every write bumps it, every update names the one it edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(u64);

impl Version {
    pub const FIRST: Self = Self(1);

    pub fn new(n: u64) -> Result<Self, FieldError> {
        if n == 0 {
            Err(FieldError::new("version", "must be a positive integer"))
        } else {
            Ok(Self(n))
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }

    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The strong entity tag for this version, quoted as HTTP wants it.
    pub fn etag(self) -> String {
        format!("\"{}\"", self.0)
    }

    /// Parses an `If-Match` value: one strong tag as produced by [`Version::etag`].
    pub fn from_if_match(header: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new("If-Match", "must be one entity tag as returned in ETag");
        let inner = header
            .trim()
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .ok_or_else(bad)?;
        // Digits only, no leading zero: the tag as `etag` writes it (`u64::from_str` would also
        // take `+7` and `007`).
        if inner.is_empty() || inner.starts_with('0') || !inner.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        inner
            .parse::<u64>()
            .map_err(|_| bad())
            .and_then(|n| Self::new(n).map_err(|_| bad()))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who did something and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub at: Timestamp,
    pub by: UserId,
    pub by_name: DisplayName,
}

impl Stamp {
    pub fn new(actor: &Actor, at: Timestamp) -> Self {
        Self {
            at,
            by: actor.id.clone(),
            by_name: actor.name.clone(),
        }
    }
}

/// A user as responses name them: who created, changed or uploaded something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Person {
    pub id: UserId,
    pub name: DisplayName,
}

impl Stamp {
    pub fn person(&self) -> Person {
        Person {
            id: self.by.clone(),
            name: self.by_name.clone(),
        }
    }
}

/// An episode as the API serves it (and as events carry it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Episode")]
pub struct EpisodeBody {
    pub id: EpisodeId,
    pub title: Title,
    pub description: Description,
    pub series: Option<SeriesName>,
    pub season: Option<PositiveNumber>,
    pub number: Option<PositiveNumber>,
    pub status: EpisodeStatus,
    pub air_date: Option<AirDate>,
    pub created_at: Timestamp,
    pub created_by: Person,
    pub updated_at: Timestamp,
    pub updated_by: Person,
    pub version: Version,
}

/// An episode as stored and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub id: EpisodeId,
    pub title: Title,
    pub description: Description,
    pub series: Option<SeriesName>,
    pub season: Option<PositiveNumber>,
    pub number: Option<PositiveNumber>,
    pub status: EpisodeStatus,
    pub air_date: Option<AirDate>,
    pub created: Stamp,
    pub updated: Stamp,
    pub version: Version,
    /// Set once deleted; a deleted episode is kept as a tombstone until it expires.
    pub deleted: Option<Stamp>,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEpisode {
    pub title: Title,
    pub description: Description,
    pub series: Option<SeriesName>,
    pub season: Option<PositiveNumber>,
    pub number: Option<PositiveNumber>,
    pub air_date: Option<AirDate>,
}

impl NewEpisode {
    /// The episode this request creates: a draft at version 1.
    pub fn into_episode(self, id: EpisodeId, actor: &Actor, now: Timestamp) -> Episode {
        let stamp = Stamp::new(actor, now);
        Episode {
            id,
            title: self.title,
            description: self.description,
            series: self.series,
            season: self.season,
            number: self.number,
            status: EpisodeStatus::Draft,
            air_date: self.air_date,
            created: stamp.clone(),
            updated: stamp,
            version: Version::FIRST,
            deleted: None,
        }
    }
}

/// A validated partial update. `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpisodeChanges {
    pub title: Option<Title>,
    pub description: Option<Description>,
    pub series: Option<Option<SeriesName>>,
    pub season: Option<Option<PositiveNumber>>,
    pub number: Option<Option<PositiveNumber>>,
    pub air_date: Option<Option<AirDate>>,
    pub status: Option<EpisodeStatus>,
}

impl EpisodeChanges {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The changed fields with their new values, as the `episode.updated` event carries them.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(t) = &self.title {
            m.insert("title".into(), json!(t));
        }
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        if let Some(s) = &self.series {
            m.insert("series".into(), json!(s));
        }
        if let Some(s) = &self.season {
            m.insert("season".into(), json!(s));
        }
        if let Some(n) = &self.number {
            m.insert("number".into(), json!(n));
        }
        if let Some(a) = &self.air_date {
            m.insert("air_date".into(), json!(a));
        }
        if let Some(s) = &self.status {
            m.insert("status".into(), json!(s));
        }
        m
    }
}

/// An update to write: the changes, the version the caller edited, and who made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeUpdate {
    pub id: EpisodeId,
    pub expected: Version,
    pub changes: EpisodeChanges,
    pub updated: Stamp,
}

impl EpisodeUpdate {
    pub fn new_version(&self) -> Version {
        self.expected.next()
    }
}

/// A deletion to write. Editors may delete only what they created; admins anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeDeletion {
    pub id: EpisodeId,
    pub expected: Option<Version>,
    pub only_if_created_by: Option<UserId>,
    pub deleted: Stamp,
}

/// Why a conditional write was refused, decided from the item as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("episode not found")]
    NotFound,
    #[error(
        "version {expected} was edited: {} saved version {current} first, at {}",
        saved.by_name.as_str(),
        saved.at
    )]
    Stale {
        expected: Version,
        current: Version,
        /// The save that made `current`.
        saved: Stamp,
    },
    #[error("status cannot move from {from} to {to}")]
    IllegalTransition {
        from: EpisodeStatus,
        to: EpisodeStatus,
    },
    #[error("only an admin or the episode's creator may delete it")]
    NotOwner,
    /// The write's condition failed, yet the item as read satisfies it: it changed in between.
    #[error("the episode changed concurrently")]
    Concurrent,
    /// The create's `Idempotency-Key` was used in the last 24 hours, for `episode`; by the same
    /// request (the same fields) or not.
    #[error("this Idempotency-Key was used in the last 24 hours")]
    Replayed {
        episode: EpisodeId,
        same_request: bool,
    },
}

impl EpisodeUpdate {
    /// Explains a refused update from the episode as it was when the write failed.
    pub fn explain(&self, current: Option<&Episode>) -> Rejection {
        let Some(cur) = current.filter(|e| e.deleted.is_none()) else {
            return Rejection::NotFound;
        };
        if cur.version != self.expected {
            return Rejection::Stale {
                expected: self.expected,
                current: cur.version,
                saved: cur.updated.clone(),
            };
        }
        if let Some(to) = self.changes.status
            && !cur.status.can_move_to(to)
        {
            return Rejection::IllegalTransition {
                from: cur.status,
                to,
            };
        }
        Rejection::Concurrent
    }
}

impl EpisodeDeletion {
    /// Explains a refused deletion from the episode as it was when the write failed.
    pub fn explain(&self, current: Option<&Episode>) -> Rejection {
        let Some(cur) = current.filter(|e| e.deleted.is_none()) else {
            return Rejection::NotFound;
        };
        if let Some(owner) = &self.only_if_created_by
            && &cur.created.by != owner
        {
            return Rejection::NotOwner;
        }
        if let Some(expected) = self.expected
            && cur.version != expected
        {
            return Rejection::Stale {
                expected,
                current: cur.version,
                saved: cur.updated.clone(),
            };
        }
        Rejection::Concurrent
    }
}

impl Episode {
    /// The episode as the API serves it (also the `episode.created` event's data).
    pub fn body(&self) -> EpisodeBody {
        EpisodeBody {
            id: self.id,
            title: self.title.clone(),
            description: self.description.clone(),
            series: self.series.clone(),
            season: self.season,
            number: self.number,
            status: self.status,
            air_date: self.air_date,
            created_at: self.created.at,
            created_by: self.created.person(),
            updated_at: self.updated.at,
            updated_by: self.updated.person(),
            version: self.version,
        }
    }

    /// [`Self::body`] as JSON (a struct of strings, numbers and JSON values: serializing it
    /// cannot fail).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Role;

    fn alice() -> Actor {
        Actor {
            id: UserId::parse("alice").unwrap(),
            name: DisplayName::new("Alice"),
            role: Role::Editor,
        }
    }

    fn episode() -> Episode {
        NewEpisode {
            title: Title::parse("Pilot").unwrap(),
            description: Description::default(),
            series: None,
            season: None,
            number: None,
            air_date: None,
        }
        .into_episode(EpisodeId::new(), &alice(), Timestamp::now())
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("  Pilot ").unwrap().as_str(), "Pilot");
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"a".repeat(200)).is_ok());
        assert!(Title::parse(&"a".repeat(201)).is_err());
        assert!(
            Title::parse(&"é".repeat(200)).is_ok(),
            "characters, not bytes"
        );
        assert!(Title::parse("two\nlines").is_err());
    }

    #[test]
    fn descriptions_allow_line_breaks_up_to_5000_chars() {
        assert!(Description::parse("a\nb\tc").is_ok());
        assert!(Description::parse(&"x".repeat(5_000)).is_ok());
        assert!(Description::parse(&"x".repeat(5_001)).is_err());
        assert!(Description::parse("bell\u{7}").is_err());
    }

    #[test]
    fn numbers_and_dates() {
        assert!(PositiveNumber::new(0).is_err());
        assert!(PositiveNumber::new(1).is_ok());
        assert!(PositiveNumber::new(100_001).is_err());
        assert!(PositiveNumber::new(u64::MAX).is_err());
        assert_eq!(
            AirDate::parse("2027-02-28").unwrap().to_string(),
            "2027-02-28"
        );
        assert!(AirDate::parse("2027-02-30").is_err());
        assert!(AirDate::parse("28/02/2027").is_err());
    }

    #[test]
    fn status_moves_follow_the_table() {
        use EpisodeStatus::*;
        let legal = [
            (Draft, InProduction),
            (InProduction, InReview),
            (InReview, Published),
            (InReview, InProduction),
            (Published, Archived),
        ];
        for from in EpisodeStatus::ALL {
            for to in EpisodeStatus::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        assert_eq!(InProduction.reachable_from(), vec![Draft, InReview]);
        assert!(Draft.reachable_from().is_empty());
    }

    #[test]
    fn etags_round_trip_and_junk_is_refused() {
        let v = Version::new(7).unwrap();
        assert_eq!(Version::from_if_match(&v.etag()), Ok(v));
        for bad in ["7", "W/\"7\"", "\"0\"", "\"x\"", "*", "\"1\", \"2\""] {
            assert!(Version::from_if_match(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refused_updates_are_explained_in_order() {
        let ep = episode();
        let update = |expected: u64, status: Option<EpisodeStatus>| EpisodeUpdate {
            id: ep.id,
            expected: Version::new(expected).unwrap(),
            changes: EpisodeChanges {
                status,
                ..Default::default()
            },
            updated: Stamp::new(&alice(), Timestamp::now()),
        };
        assert_eq!(update(1, None).explain(None), Rejection::NotFound);
        let mut gone = ep.clone();
        gone.deleted = Some(gone.created.clone());
        assert_eq!(update(1, None).explain(Some(&gone)), Rejection::NotFound);
        assert!(matches!(
            update(2, None).explain(Some(&ep)),
            Rejection::Stale { .. }
        ));
        assert_eq!(
            update(1, Some(EpisodeStatus::Published)).explain(Some(&ep)),
            Rejection::IllegalTransition {
                from: EpisodeStatus::Draft,
                to: EpisodeStatus::Published
            }
        );
        assert_eq!(
            update(1, Some(EpisodeStatus::InProduction)).explain(Some(&ep)),
            Rejection::Concurrent
        );
    }

    #[test]
    fn refused_deletions_are_explained() {
        let ep = episode();
        let deletion = |owner: &str| EpisodeDeletion {
            id: ep.id,
            expected: None,
            only_if_created_by: Some(UserId::parse(owner).unwrap()),
            deleted: Stamp::new(&alice(), Timestamp::now()),
        };
        assert_eq!(deletion("bob").explain(Some(&ep)), Rejection::NotOwner);
        assert_eq!(deletion("alice").explain(None), Rejection::NotFound);
    }

    #[test]
    fn changes_list_only_what_was_sent() {
        let changes = EpisodeChanges {
            title: Some(Title::parse("New").unwrap()),
            season: Some(None),
            ..Default::default()
        };
        assert_eq!(
            serde_json::Value::Object(changes.to_json()),
            json!({"title": "New", "season": null})
        );
        assert!(EpisodeChanges::default().is_empty());
    }
}
