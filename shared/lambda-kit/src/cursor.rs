//! Opaque list cursors: a position in a list, bound to the query that produced it (its
//! "scope"), so a cursor cannot be replayed against another filter.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::FieldError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorBody {
    after: Vec<String>,
    scope: String,
}

pub fn encode(after: &[String], scope: &str) -> String {
    let body = CursorBody {
        after: after.to_vec(),
        scope: scope.to_owned(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default())
}

/// The position, when the cursor is one of ours and was made for `scope`.
pub fn decode(cursor: &str, scope: &str) -> Result<Vec<String>, FieldError> {
    let invalid = || FieldError::new("cursor", "is not a cursor this list returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body.scope != scope {
        return Err(FieldError::new("cursor", "was made for another query"));
    }
    Ok(body.after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_within_its_scope_only() {
        let c = encode(&["a".into(), "b".into()], "actor=alice");
        assert_eq!(decode(&c, "actor=alice").unwrap(), ["a", "b"]);
        assert!(decode(&c, "actor=bob").is_err());
        assert!(decode("%%%", "").is_err());
    }
}
