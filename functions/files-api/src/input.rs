//! The upload request body to a [`NewFile`], every problem reported by field at once.

use domain::{ContentType, FieldError, FileName, FileSize, NewFile, Sha256, ValidationErrors};
use lambda_kit::Problem;
use lambda_kit::router::{BodyRules, JsonObject};
use serde_json::Value;

/// The body of `POST /episodes/{id}/files`.
#[derive(Debug)]
pub struct NewFileBody;

impl BodyRules for NewFileBody {
    const MAX_BYTES: usize = 16 * 1024;
    const FIELDS: &'static [&'static str] = &["name", "content_type", "size", "sha256"];
}

pub fn new_file(body: JsonObject<NewFileBody>) -> Result<NewFile, Problem> {
    let JsonObject {
        fields: map,
        mut errors,
        ..
    } = body;
    let mut string = |key: &str, required: bool| match map.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) if !required => None,
        None | Some(Value::Null) => {
            errors.push(FieldError::new(key, "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(key, "must be a string"));
            None
        }
    };
    let name = string("name", true);
    let content_type = string("content_type", true);
    let sha256 = string("sha256", false);
    let size = match map.get("size") {
        Some(v @ Value::Number(_)) => match domain::whole_number(v) {
            Some(v) => Some(v),
            None => {
                errors.push(FieldError::new("size", "must be a whole number of bytes"));
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push(FieldError::new("size", "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("size", "must be a number"));
            None
        }
    };
    let name = check(&mut errors, name.as_deref().map(FileName::parse));
    let content_type = check(&mut errors, content_type.as_deref().map(ContentType::parse));
    let size = check(&mut errors, size.map(FileSize::new));
    let sha256 = check(&mut errors, sha256.as_deref().map(Sha256::parse));
    match (name, content_type, size) {
        (Some(name), Some(content_type), Some(size)) if errors.is_empty() => Ok(NewFile {
            name,
            content_type,
            size,
            sha256,
        }),
        _ => Err(Problem::unprocessable(errors)),
    }
}

/// The parsed value, or None with its error noted.
fn check<T>(errors: &mut ValidationErrors, r: Option<Result<T, FieldError>>) -> Option<T> {
    match r {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_file(body: &[u8]) -> Result<NewFile, Problem> {
        super::new_file(JsonObject::parse(body)?)
    }

    #[test]
    fn a_good_request() {
        let f =
            new_file(br#"{"name":"intro.wav","content_type":"audio/wav","size":1024}"#).unwrap();
        assert_eq!(f.name.as_str(), "intro.wav");
        assert_eq!(f.size.get(), 1024);
        assert!(f.sha256.is_none());
    }

    #[test]
    fn every_problem_is_named() {
        let p = new_file(
            br#"{"name":"../x","content_type":"application/x-sh","size":0,"sha256":"zz","owner":"me"}"#,
        )
        .unwrap_err();
        let body = serde_json::to_value(&p).unwrap().to_string();
        for field in ["name", "content_type", "size", "sha256", "owner"] {
            assert!(body.contains(&format!("\"{field}\"")), "{field} in {body}");
        }
        assert_eq!(p.status().as_u16(), 422);
        assert_eq!(new_file(b"{oops").unwrap_err().status().as_u16(), 400);
        assert_eq!(
            new_file(br#"{"name":"a","content_type":"audio/wav","size":-1}"#)
                .unwrap_err()
                .status()
                .as_u16(),
            422
        );
        assert_eq!(
            new_file(br#"{"name":"a","content_type":"audio/wav","size":"1"}"#)
                .unwrap_err()
                .status()
                .as_u16(),
            422
        );
    }
}
