//! Timestamps: UTC, millisecond precision, one fixed RFC 3339 form so they also sort as strings.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(OffsetDateTime);

/// The string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an RFC 3339 timestamp")]
pub struct InvalidTimestamp(String);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub fn from_datetime(t: OffsetDateTime) -> Self {
        let t = t.to_offset(UtcOffset::UTC);
        let millis = t.millisecond();
        // Truncation to whole milliseconds cannot fail for a valid millisecond value.
        Self(t.replace_millisecond(millis).unwrap_or(t))
    }

    pub fn parse(s: &str) -> Result<Self, InvalidTimestamp> {
        OffsetDateTime::parse(s, &Rfc3339)
            .map(Self::from_datetime)
            .map_err(|_| InvalidTimestamp(s.to_owned()))
    }

    /// The instant `seconds` after the Unix epoch; None outside the representable years.
    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(Self::from_datetime)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    pub fn unix_millis(self) -> i128 {
        self.0.unix_timestamp_nanos() / 1_000_000
    }

    /// The same instant plus (or minus) whole seconds.
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0 + time::Duration::seconds(seconds))
    }

    /// The same instant plus whole days (for TTLs).
    pub fn plus_days(self, days: i64) -> Self {
        Self(self.0 + time::Duration::days(days))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        match self.0.format(&format) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl TryFrom<String> for Timestamp {
    type Error = InvalidTimestamp;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_utc_millis_and_round_trips() {
        let t =
            Timestamp::parse("2026-11-25T18:00:01.123456+02:00").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.to_string(), "2026-11-25T16:00:01.123Z");
        assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
