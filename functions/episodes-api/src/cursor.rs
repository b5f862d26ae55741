//! Opaque list cursors: where the next page starts, bound to the filter it was made for, so a
//! cursor from one list cannot be replayed against another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::{EpisodeId, EpisodeStatus, FieldError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorBody {
    after: EpisodeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<EpisodeStatus>,
}

pub fn encode(after: EpisodeId, status: Option<EpisodeStatus>) -> String {
    // Serialising two plain fields cannot fail; an empty cursor would only end the list early.
    let json = serde_json::to_vec(&CursorBody { after, status }).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

pub fn decode(cursor: &str, status: Option<EpisodeStatus>) -> Result<EpisodeId, FieldError> {
    let invalid = || FieldError::new("cursor", "is not a cursor this list returned");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let body: CursorBody = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if body.status != status {
        return Err(FieldError::new(
            "cursor",
            "was made for another status filter",
        ));
    }
    Ok(body.after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_bound_to_the_filter() {
        let id = EpisodeId::new();
        let c = encode(id, Some(EpisodeStatus::Draft));
        assert_eq!(decode(&c, Some(EpisodeStatus::Draft)), Ok(id));
        assert!(decode(&c, None).is_err());
        assert!(decode("not-a-cursor", None).is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode(br#"{"after":"x"}"#), None).is_err());
    }
}
