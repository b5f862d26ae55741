//! Request bodies to domain values. The body is read as a JSON object field by field so every
//! problem — unknown fields, wrong types, values out of range — is reported by name, at once.

use domain::{
    AirDate, Description, EpisodeChanges, EpisodeStatus, FieldError, NewEpisode, PositiveNumber,
    SeriesName, Title, ValidationErrors, Version,
};
use lambda_kit::Problem;
use lambda_kit::router::{BodyRules, JsonObject};
use serde_json::{Map, Value};

/// A JSON object being taken apart; remembers every error on the way.
struct Fields {
    map: Map<String, Value>,
    errors: ValidationErrors,
}

/// How a field was given: absent, explicitly null, or with a value.
enum Given<T> {
    Absent,
    Null,
    Value(T),
}

impl<B> From<JsonObject<B>> for Fields {
    fn from(body: JsonObject<B>) -> Self {
        Self {
            map: body.fields,
            errors: body.errors,
        }
    }
}

impl Fields {
    fn raw(&self, key: &str) -> Given<&Value> {
        match self.map.get(key) {
            None => Given::Absent,
            Some(Value::Null) => Given::Null,
            Some(v) => Given::Value(v),
        }
    }

    /// A string field run through a domain parser; the error is reported under `key`.
    fn string<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, FieldError>,
    ) -> Given<T> {
        match self.raw(key) {
            Given::Absent => Given::Absent,
            Given::Null => Given::Null,
            Given::Value(Value::String(s)) => match parse(s) {
                Ok(v) => Given::Value(v),
                Err(e) => {
                    self.errors.push(e.at(key));
                    Given::Absent
                }
            },
            Given::Value(_) => {
                self.errors.push(FieldError::new(key, "must be a string"));
                Given::Absent
            }
        }
    }

    /// A non-negative integer field run through a domain parser.
    fn integer<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(u64) -> Result<T, FieldError>,
    ) -> Given<T> {
        match self.raw(key) {
            Given::Absent => Given::Absent,
            Given::Null => Given::Null,
            Given::Value(v) => match domain::whole_number(v) {
                Some(n) => match parse(n) {
                    Ok(v) => Given::Value(v),
                    Err(e) => {
                        self.errors.push(e.at(key));
                        Given::Absent
                    }
                },
                None => {
                    self.errors
                        .push(FieldError::new(key, "must be a positive integer"));
                    Given::Absent
                }
            },
        }
    }

    /// A field that may be cleared: absent → unchanged, null → cleared, value → set.
    fn clearable<T>(&mut self, given: Given<T>) -> Option<Option<T>> {
        match given {
            Given::Absent => None,
            Given::Null => Some(None),
            Given::Value(v) => Some(Some(v)),
        }
    }

    /// A field that may not be null.
    fn not_null<T>(&mut self, key: &str, given: Given<T>) -> Option<T> {
        match given {
            Given::Absent => None,
            Given::Null => {
                self.errors.push(FieldError::new(key, "must not be null"));
                None
            }
            Given::Value(v) => Some(v),
        }
    }
}

/// Bodies over this size are refused with 413 before they are parsed.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body of `POST /episodes`.
#[derive(Debug)]
pub struct Create;

impl BodyRules for Create {
    const MAX_BYTES: usize = MAX_BODY_BYTES;
    const FIELDS: &'static [&'static str] = &[
        "title",
        "description",
        "series",
        "season",
        "number",
        "air_date",
    ];
}

/// The body of `PATCH /episodes/{id}`: JSON or a JSON merge patch (RFC 7396), which is what
/// the body is either way.
#[derive(Debug)]
pub struct Patch;

impl BodyRules for Patch {
    const MEDIA_TYPES: &'static [&'static str] =
        &["application/json", "application/merge-patch+json"];
    const MAX_BYTES: usize = MAX_BODY_BYTES;
    const FIELDS: &'static [&'static str] = &[
        "title",
        "description",
        "series",
        "season",
        "number",
        "air_date",
        "status",
        "version",
    ];
}

/// `POST /episodes`. New episodes are drafts; `status` is set by later transitions.
pub fn new_episode(body: JsonObject<Create>) -> Result<NewEpisode, Problem> {
    let mut f = Fields::from(body);
    let title = f.string("title", Title::parse);
    let title = f.not_null("title", title);
    if title.is_none() && !f.errors.fields().iter().any(|e| e.field == "title") {
        f.errors.push(FieldError::new("title", "is required"));
    }
    let description = f.string("description", Description::parse);
    let description = f.clearable(description).flatten().unwrap_or_default();
    let series = f.string("series", SeriesName::parse);
    let series = f.clearable(series).flatten();
    let season = f.integer("season", PositiveNumber::new);
    let season = f.clearable(season).flatten();
    let number = f.integer("number", PositiveNumber::new);
    let number = f.clearable(number).flatten();
    let air_date = f.string("air_date", AirDate::parse);
    let air_date = f.clearable(air_date).flatten();
    match title {
        Some(title) if f.errors.is_empty() => Ok(NewEpisode {
            title,
            description,
            series,
            season,
            number,
            air_date,
        }),
        _ => Err(Problem::unprocessable(f.errors)),
    }
}

/// `PATCH /episodes/{id}`: the changes, and the version the caller says it edited (if any).
pub fn episode_changes(
    body: JsonObject<Patch>,
) -> Result<(EpisodeChanges, Option<Version>), Problem> {
    let mut f = Fields::from(body);
    let title = f.string("title", Title::parse);
    let description = f.string("description", Description::parse);
    let series = f.string("series", SeriesName::parse);
    let season = f.integer("season", PositiveNumber::new);
    let number = f.integer("number", PositiveNumber::new);
    let air_date = f.string("air_date", AirDate::parse);
    let status = f.string("status", EpisodeStatus::parse);
    let version = f.integer("version", Version::new);
    let changes = EpisodeChanges {
        title: f.not_null("title", title),
        description: f.not_null("description", description),
        series: f.clearable(series),
        season: f.clearable(season),
        number: f.clearable(number),
        air_date: f.clearable(air_date),
        status: f.not_null("status", status),
    };
    let version = f.not_null("version", version);
    if f.errors.is_empty() && changes.is_empty() {
        f.errors
            .push(FieldError::new("body", "names no field to change"));
    }
    f.errors
        .finish((changes, version))
        .map_err(Problem::unprocessable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_episode(body: &[u8]) -> Result<NewEpisode, Problem> {
        super::new_episode(JsonObject::parse(body)?)
    }

    fn episode_changes(body: &[u8]) -> Result<(EpisodeChanges, Option<Version>), Problem> {
        super::episode_changes(JsonObject::parse(body)?)
    }

    #[track_caller]
    fn fields_of(p: Problem) -> Vec<String> {
        p.errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn creates_with_only_a_title() {
        let ep = new_episode(br#"{"title":"  Pilot "}"#).unwrap();
        assert_eq!(ep.title.as_str(), "Pilot");
        assert!(ep.series.is_none() && ep.description.as_str().is_empty());
    }

    #[test]
    fn malformed_json_is_400_and_names_the_body() {
        let p = new_episode(b"{\"title\":").unwrap_err();
        assert_eq!(p.status, 400);
        assert_eq!(fields_of(p), ["body"]);
    }

    #[test]
    fn every_bad_field_is_named() {
        let p = new_episode(
            br#"{"title": 5, "season": 0, "number": "two", "air_date": "soon", "status": "published", "colour": "red"}"#,
        )
        .unwrap_err();
        assert_eq!(p.status, 422);
        let mut fields = fields_of(p);
        fields.sort();
        assert_eq!(
            fields,
            ["air_date", "colour", "number", "season", "status", "title"]
        );
    }

    #[test]
    fn title_is_required_and_not_null() {
        assert_eq!(fields_of(new_episode(b"{}").unwrap_err()), ["title"]);
        assert_eq!(
            fields_of(new_episode(br#"{"title": null}"#).unwrap_err()),
            ["title"]
        );
        assert_eq!(fields_of(new_episode(b"[]").unwrap_err()), ["body"]);
    }

    #[test]
    fn over_long_strings_are_refused() {
        let body = format!(r#"{{"title":"{}"}}"#, "a".repeat(201));
        assert_eq!(
            fields_of(new_episode(body.as_bytes()).unwrap_err()),
            ["title"]
        );
        let body = format!(r#"{{"title":"ok","description":"{}"}}"#, "a".repeat(5_001));
        assert_eq!(
            fields_of(new_episode(body.as_bytes()).unwrap_err()),
            ["description"]
        );
    }

    #[test]
    fn patches_distinguish_absent_null_and_value() {
        let (c, v) =
            episode_changes(br#"{"season": null, "status": "in_production", "version": 3}"#)
                .unwrap();
        assert_eq!(c.season, Some(None));
        assert_eq!(c.number, None);
        assert_eq!(c.status, Some(EpisodeStatus::InProduction));
        assert_eq!(v.map(Version::get), Some(3));
    }

    #[test]
    fn empty_or_invalid_patches_are_refused() {
        assert_eq!(
            fields_of(episode_changes(br#"{"version": 1}"#).unwrap_err()),
            ["body"]
        );
        assert_eq!(
            fields_of(episode_changes(br#"{"title": null}"#).unwrap_err()),
            ["title"]
        );
        assert_eq!(
            fields_of(episode_changes(br#"{"status": "done"}"#).unwrap_err()),
            ["status"]
        );
        assert_eq!(
            fields_of(episode_changes(br#"{"version": -1, "title": "x"}"#).unwrap_err()),
            ["version"]
        );
        assert_eq!(
            fields_of(episode_changes(br#"{"id": "x", "title": "x"}"#).unwrap_err()),
            ["id"]
        );
    }
}
