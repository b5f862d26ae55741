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
