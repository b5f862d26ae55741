//! Identifiers. Ids are UUIDv7: unique without coordination and ordered by creation time, so a
//! newest-first list is a reverse walk over ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The id string did not parse as the expected id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid id")]
pub struct InvalidId(pub String);

macro_rules! uuid_v7_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id, ordered after every id made earlier on this clock.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses the canonical hyphenated form; anything else (other UUID versions
            /// included) is refused, so an id in a URL is either ours or invalid.
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                let uuid = Uuid::try_parse(s).map_err(|_| InvalidId(s.to_owned()))?;
                let canonical = uuid.hyphenated().to_string();
                if uuid.get_version_num() != 7 || canonical != s {
                    return Err(InvalidId(s.to_owned()));
                }
                Ok(Self(uuid))
            }
        }

        impl $name {
            /// One of `count` buckets, from the id's last byte: random bits of a UUIDv7, so
            /// ids spread evenly (exactly so for a `count` dividing 256), and the same id falls
            /// in the same bucket in every release (it is not `std`'s hasher, which may change).
            /// Partition keys are sharded by it; other implementations compute it the same way
            /// (`int(id[-2:], 16) % count`).
            pub fn bucket(self, count: std::num::NonZeroU8) -> u8 {
                self.0.as_bytes()[15] % count.get()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }
    };
}

uuid_v7_id!(
    /// The id of an episode.
    EpisodeId
);
uuid_v7_id!(
    /// The id of an episode's file.
    FileId
);
uuid_v7_id!(
    /// The id of a processing job.
    JobId
);
uuid_v7_id!(
    /// The id of an export of the activity log.
    ExportId
);
impl FileId {
    /// The id of the file a job makes (a thumbnail): the job's own id, so every attempt of one
    /// job names the same file, and no two jobs the same.
    pub fn made_by(job: JobId) -> Self {
        Self(job.0)
    }
}

impl JobId {
    /// The id of a job started for a file by a rule: a UUIDv7 of the instant the file became
    /// available (so it sorts among the jobs created then), whose other bits are the file id's
    /// with the last byte changed by `salt` (1 to 15; the job type's): the same file, instant
    /// and type always give the same id.
    pub fn for_file(file: FileId, available_at: crate::time::Timestamp, salt: u8) -> Self {
        let mut bytes = *file.0.as_bytes();
        let ms = u64::try_from(available_at.unix_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
        bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        bytes[15] ^= (salt & 0x0f).max(1);
        Self(uuid::Uuid::from_bytes(bytes))
    }
}

uuid_v7_id!(
    /// The id of a domain event; consumers deduplicate on it.
    EventId
);

/// The smallest and largest UUIDv7 strings of the millisecond `t` falls in: key-condition
/// bounds for "ids made between two instants", since UUIDv7 strings sort by time.
pub fn uuid_v7_bounds(t: crate::time::Timestamp) -> (String, String) {
    let ms = u64::try_from(t.unix_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    let (hi, lo) = (ms >> 16, ms & 0xffff);
    (
        format!("{hi:08x}-{lo:04x}-7000-8000-000000000000"),
        format!("{hi:08x}-{lo:04x}-7fff-bfff-ffffffffffff"),
    )
}

/// Ties together every event and log line caused by one request. Taken from the caller's
/// `X-Correlation-Id` when it is sane (1–128 of `A-Z a-z 0-9 - _ . : = + /`), else the API
/// Gateway request id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationId(String);

impl CorrelationId {
    pub const MAX_LEN: usize = 128;

    /// A fresh one, for requests that arrive without any.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:=+/".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId(s.to_owned()))
        }
    }

    /// Longest correlation id taken from a client.
    pub const CLIENT_MAX_LEN: usize = 64;

    /// A correlation id a client sent (`x-correlation-id`): kept only when it is a short token
    /// of letters, digits and `-_.`, so what a client chooses cannot smuggle structure into
    /// logs and audit entries; otherwise None (the server's request id is used instead).
    pub fn from_client(s: &str) -> Option<Self> {
        let safe = !s.is_empty()
            && s.len() <= Self::CLIENT_MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        safe.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CorrelationId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CorrelationId> for String {
    fn from(id: CorrelationId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_file_is_the_same_on_every_attempt_and_differs_between_jobs() {
        let (job, other) = (JobId::new(), JobId::new());
        assert_eq!(FileId::made_by(job), FileId::made_by(job));
        assert_ne!(FileId::made_by(job), FileId::made_by(other));
        // Still a valid file id (a UUIDv7), as the key and the API require.
        let id = FileId::made_by(job).to_string();
        assert_eq!(FileId::parse(&id), Ok(FileId::made_by(job)));
    }

    #[test]
    fn client_correlation_ids_are_short_safe_tokens() {
        assert!(CorrelationId::from_client("trace-42.a_B").is_some());
        assert!(CorrelationId::from_client(&"x".repeat(64)).is_some());
        for bad in ["", "a b", "a/b", "a:b", "a+b", "a=b", "ü", "{\"x\":1}"] {
            assert!(CorrelationId::from_client(bad).is_none(), "{bad:?}");
        }
        assert!(CorrelationId::from_client(&"x".repeat(65)).is_none());
        // Stored ids keep parsing as before (API Gateway's request ids end in =).
        assert!(CorrelationId::parse("Pio4rdBDy6w08WE=").is_ok());
    }

    #[test]
    fn new_ids_round_trip_and_sort_by_creation() {
        let a = EpisodeId::new();
        let b = EpisodeId::new();
        assert_eq!(EpisodeId::parse(&a.to_string()), Ok(a));
        assert!(a < b);
        assert!(
            a.to_string() < b.to_string(),
            "string order follows creation order"
        );
    }

    #[test]
    fn buckets_come_from_the_last_byte_and_spread_evenly() {
        let eight = std::num::NonZeroU8::new(8).unwrap();
        // Pinned: stored partition keys depend on it.
        let id = EpisodeId::parse("019ad3a4-0000-7000-8000-0000000000fd").unwrap();
        assert_eq!(id.bucket(eight), 0xfd % 8);
        let mut counts = [0u32; 8];
        for _ in 0..8_000 {
            let id = EpisodeId::new();
            let last = u8::from_str_radix(&id.to_string()[34..], 16).unwrap();
            assert_eq!(
                id.bucket(eight),
                last % 8,
                "as other implementations compute it"
            );
            counts[usize::from(id.bucket(eight))] += 1;
        }
        // 1,000 expected each; five standard deviations (about 5 × 30) either side.
        assert!(
            counts.iter().all(|c| (850..=1_150).contains(c)),
            "{counts:?}"
        );
    }

    #[test]
    fn foreign_or_malformed_ids_are_refused() {
        for bad in [
            "",
            "42",
            "not-a-uuid",
            "0b8e6a5e-4c1a-4f3e-9d7b-2f1c3a4b5c6d", // v4
            "../../etc/passwd",
        ] {
            assert!(EpisodeId::parse(bad).is_err(), "{bad}");
        }
        let upper = EpisodeId::new().to_string().to_uppercase();
        assert!(EpisodeId::parse(&upper).is_err(), "only the canonical form");
    }

    #[test]
    fn v7_bounds_enclose_ids_of_that_millisecond() {
        let now = crate::time::Timestamp::now();
        let id = EventId::new().to_string();
        let (lo, hi) = uuid_v7_bounds(now.plus_days(-1));
        assert!(lo < id && hi < id);
        let (lo, hi) = uuid_v7_bounds(now.plus_days(1));
        assert!(lo > id && hi > id);
    }

    #[test]
    fn correlation_ids_are_bounded_and_plain() {
        assert!(CorrelationId::parse("req-1_a.b:c").is_ok());
        assert!(
            CorrelationId::parse("PioQrdBDy6w08WE=").is_ok(),
            "API Gateway request ids"
        );
        assert!(CorrelationId::parse("").is_err());
        assert!(CorrelationId::parse("has space").is_err());
        assert!(CorrelationId::parse(&"x".repeat(129)).is_err());
    }
}
