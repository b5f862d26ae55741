//! Configuration comes from the function's environment, read once at init.

/// A required setting is missing or empty: the function refuses to start.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} must be set")]
pub struct ConfigError(pub &'static str);

pub fn required_env(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError(name)),
    }
}

/// A numeric setting is not a whole number: the function refuses to start.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name} must be a whole number, not {value:?}")]
pub struct NumberError {
    name: &'static str,
    value: String,
}

/// A whole-number setting (seconds, days); unset or empty means `default`.
pub fn whole_env(name: &'static str, default: u32) -> Result<u32, NumberError> {
    parse_whole(name, std::env::var(name).ok().as_deref(), default)
}

fn parse_whole(name: &'static str, value: Option<&str>, default: u32) -> Result<u32, NumberError> {
    match value.map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| NumberError {
            name,
            value: v.to_owned(),
        }),
    }
}

/// How long notifications are kept (`READ_NOTIFICATION_RETENTION_DAYS`,
/// `UNREAD_NOTIFICATION_RETENTION_DAYS`: the template's parameters); unset means the default.
pub fn notification_retention_from_env() -> Result<domain::notification::Retention, NumberError> {
    let default = domain::notification::Retention::DEFAULT;
    Ok(domain::notification::Retention {
        read_days: whole_env("READ_NOTIFICATION_RETENTION_DAYS", default.read_days)?,
        unread_days: whole_env("UNREAD_NOTIFICATION_RETENTION_DAYS", default.unread_days)?,
    })
}

/// How long a user's last-seen time on an episode is kept (`PRESENCE_RETENTION_DAYS`: the
/// template's `PresenceRetentionDays`); unset means the default.
pub fn presence_retention_from_env() -> Result<u32, NumberError> {
    whole_env(
        "PRESENCE_RETENTION_DAYS",
        domain::realtime::DEFAULT_PRESENCE_RETENTION_DAYS,
    )
}

/// The stack's rules for jobs on upload are not valid rules.
#[derive(Debug, thiserror::Error)]
#[error("environment variable UPLOAD_JOBS is not valid rules for jobs on upload: {0}")]
pub struct RulesError(String);

/// The stack's rules for jobs on upload (`UPLOAD_JOBS`, JSON: the template's `UploadJobs`
/// parameter); unset or empty means none. Invalid rules stop the function at init, so a bad
/// parameter shows at once instead of as jobs that never start.
pub fn upload_rules_from_env() -> Result<domain::upload_rules::UploadRules, RulesError> {
    let text = std::env::var("UPLOAD_JOBS").unwrap_or_default();
    parse_upload_rules(&text)
}

pub fn parse_upload_rules(text: &str) -> Result<domain::upload_rules::UploadRules, RulesError> {
    if text.trim().is_empty() {
        return Ok(domain::upload_rules::UploadRules::default());
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RulesError(e.to_string()))?;
    domain::upload_rules::UploadRules::parse(&value).map_err(|e| RulesError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_whole;

    #[test]
    fn whole_numbers_or_the_default_and_nothing_else() {
        assert_eq!(parse_whole("W", None, 60).unwrap(), 60);
        assert_eq!(parse_whole("W", Some(" "), 60).unwrap(), 60);
        assert_eq!(parse_whole("W", Some("0"), 60).unwrap(), 0);
        assert_eq!(parse_whole("W", Some(" 90 "), 60).unwrap(), 90);
        for bad in ["-1", "1.5", "sixty", "99999999999"] {
            let e = parse_whole("W", Some(bad), 60).unwrap_err();
            assert!(e.to_string().contains("W must be a whole number"), "{e}");
        }
    }
}
