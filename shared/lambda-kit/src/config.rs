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
