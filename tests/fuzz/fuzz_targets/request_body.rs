//! A request body as every HTTP function reads it: a JSON object (400 or 422 otherwise) whose
//! unknown fields are named, then its fields through the domain's parsers.
#![no_main]

use domain::episode::{AirDate, Description, SeriesName, Title};
use domain::{EpisodeStatus, JobParams, JobType};
use lambda_kit::router::{BodyRules, JsonObject};
use libfuzzer_sys::fuzz_target;

struct Episode;

impl BodyRules for Episode {
    const MAX_BYTES: usize = 64 * 1024;
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

fuzz_target!(|bytes: &[u8]| {
    let Ok(body) = JsonObject::<Episode>::parse(bytes) else {
        return;
    };
    let text = |k: &str| body.fields.get(k).and_then(|v| v.as_str());
    if let Some(s) = text("title") {
        let _ = Title::parse(s);
    }
    if let Some(s) = text("description") {
        let _ = Description::parse(s);
    }
    if let Some(s) = text("series") {
        let _ = SeriesName::parse(s);
    }
    if let Some(s) = text("air_date") {
        let _ = AirDate::parse(s);
    }
    if let Some(s) = text("status") {
        let _ = EpisodeStatus::parse(s);
    }
    for v in body.fields.values() {
        let _ = domain::whole_number(v);
    }
    let params = serde_json::Value::Object(body.fields.clone());
    for job_type in JobType::ALL {
        let _ = JobParams::parse(job_type, &params, true);
    }
    // The body of PUT /episodes/{id}/upload-rules; what parses is stored and read back as is.
    if let Ok(rules) = domain::upload_rules::UploadRules::parse(&params) {
        assert_eq!(domain::upload_rules::UploadRules::parse(&rules.to_json()).ok(), Some(rules));
    }
});
