//! Every field value parser: ids, titles, names, dates, statuses, content types, checksums,
//! page sizes, timestamps, ETags. What parses parses again from its rendering, the same.
#![no_main]

use domain::episode::{AirDate, Description, SeriesName, Title};
use domain::file::{ContentType, FileName, Sha256};
use domain::store::PageSize;
use domain::{EpisodeId, EpisodeStatus, JobType, Timestamp, UserId, Version};
use libfuzzer_sys::fuzz_target;

fn again<T: PartialEq + std::fmt::Debug, E: std::fmt::Debug>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, E>,
    show: impl Fn(&T) -> String,
) {
    if let Ok(v) = parse(s) {
        assert_eq!(parse(&show(&v)).expect("its rendering parses"), v);
    }
}

fuzz_target!(|s: &str| {
    again(s, EpisodeId::parse, ToString::to_string);
    again(s, UserId::parse, |u| u.as_str().to_owned());
    again(s, Title::parse, |t| t.as_str().to_owned());
    again(s, Description::parse, |t| t.as_str().to_owned());
    again(s, SeriesName::parse, |t| t.as_str().to_owned());
    again(s, AirDate::parse, |d| {
        serde_json::to_value(d)
            .unwrap_or_default()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    again(s, EpisodeStatus::parse, |x| x.as_str().to_owned());
    again(s, JobType::parse, |x| x.as_str().to_owned());
    again(s, ContentType::parse, |c| c.as_str().to_owned());
    again(s, FileName::parse, |f| f.as_str().to_owned());
    again(s, Sha256::parse, |h| h.as_hex().to_owned());
    again(s, PageSize::parse, |p| p.get().to_string());
    again(s, Timestamp::parse, ToString::to_string);
    again(s, Version::from_if_match, |v| v.etag());
});
