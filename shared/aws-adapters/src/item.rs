//! Reading and writing DynamoDB attribute maps without panics.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// A stored item did not have the shape this code writes.
#[derive(Debug, thiserror::Error)]
#[error("corrupt item: attribute `{attribute}` {problem}")]
pub struct CorruptItem {
    attribute: &'static str,
    problem: String,
}

pub(crate) fn corrupt(attribute: &'static str, problem: impl Into<String>) -> CorruptItem {
    CorruptItem {
        attribute,
        problem: problem.into(),
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn opt_str<'a>(
    item: &'a Item,
    name: &'static str,
) -> Result<Option<&'a str>, CorruptItem> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v)),
        Some(_) => Err(corrupt(name, "is not a string")),
    }
}

pub(crate) fn req_str<'a>(item: &'a Item, name: &'static str) -> Result<&'a str, CorruptItem> {
    opt_str(item, name)?.ok_or_else(|| corrupt(name, "is missing"))
}

pub(crate) fn opt_u64(item: &Item, name: &'static str) -> Result<Option<u64>, CorruptItem> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| corrupt(name, "is not a u64")),
        Some(_) => Err(corrupt(name, "is not a number")),
    }
}

pub(crate) fn req_u64(item: &Item, name: &'static str) -> Result<u64, CorruptItem> {
    opt_u64(item, name)?.ok_or_else(|| corrupt(name, "is missing"))
}

/// Parses a required string attribute with a domain parser.
pub(crate) fn parse<T, E: std::fmt::Display>(
    item: &Item,
    name: &'static str,
    f: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, CorruptItem> {
    f(req_str(item, name)?).map_err(|e| corrupt(name, e.to_string()))
}

/// Parses an optional string attribute with a domain parser.
pub(crate) fn parse_opt<T, E: std::fmt::Display>(
    item: &Item,
    name: &'static str,
    f: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, CorruptItem> {
    opt_str(item, name)?
        .map(f)
        .transpose()
        .map_err(|e| corrupt(name, e.to_string()))
}
