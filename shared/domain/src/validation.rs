//! Field-level validation errors, collected so a client learns every problem at once.

use std::fmt;

use schemars::JsonSchema;
use serde::Serialize;

/// A JSON number as a non-negative integer: `5` and `5.0` alike, as JSON Schema's `integer`
/// has it (a number with no fractional part), so what the contract calls valid is accepted.
pub fn whole_number(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let f = v.as_f64()?;
        // Exactly representable integers only (below 2^53), so the cast is exact.
        (f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&f)).then_some(f as u64)
    })
}

/// One offending field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, JsonSchema)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// A JSON pointer-ish path: `title`, `season`, `query.limit`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, reported under another field name.
    pub fn at(mut self, field: &str) -> Self {
        self.field = field.to_owned();
        self
    }
}

/// Every field error of one input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> &[FieldError] {
        &self.0
    }

    /// Keeps the value when it parsed, remembers the error when not.
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    /// `Ok(v)` when nothing was collected.
    pub fn finish<T>(self, v: T) -> Result<T, Self> {
        if self.is_empty() { Ok(v) } else { Err(self) }
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(e: FieldError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `5.0` was refused where the contract says `integer` (which JSON Schema defines as a
    /// number with no fractional part, and schemathesis generates).
    #[test]
    fn a_whole_number_may_be_written_with_a_zero_fraction() {
        assert_eq!(whole_number(&json!(5)), Some(5));
        assert_eq!(whole_number(&json!(5.0)), Some(5));
        assert_eq!(whole_number(&json!(0.0)), Some(0));
        for refused in [
            json!(5.5),
            json!(-1),
            json!(-1.0),
            json!(1e300),
            json!("5"),
            json!(null),
        ] {
            assert_eq!(whole_number(&refused), None, "{refused}");
        }
    }
}
