//! What the stores share about DynamoDB transactions and episodes.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use domain::store::{IDEMPOTENCY_HOURS, Idempotency, StoreError};
use domain::{EpisodeId, Timestamp, UserId};

use crate::item::{self, Item, n, s};

/// Why a transaction was cancelled: for each of its items, in order, whether its condition
/// failed, and the item as it was (when `ReturnValuesOnConditionCheckFailure` asked for it).
/// None when the error is not a cancellation.
pub(crate) fn cancellation_reasons(
    err: &SdkError<TransactWriteItemsError>,
) -> Option<Vec<(bool, Option<Item>)>> {
    let SdkError::ServiceError(se) = err else {
        return None;
    };
    let TransactWriteItemsError::TransactionCanceledException(tc) = se.err() else {
        return None;
    };
    Some(
        tc.cancellation_reasons()
            .iter()
            .map(|r| {
                (
                    r.code() == Some("ConditionalCheckFailed"),
                    r.item().filter(|i| !i.is_empty()).cloned(),
                )
            })
            .collect(),
    )
}

/// The item that records `user`'s idempotency key in `table`, naming what the create made
/// (`made` = its id, under the attribute `made_attr`): new, or the old one expired. Keys are
/// `idem#<user>#<key>`; the item has no index keys and goes with the table's TTL a day later.
/// A failed condition returns the old item, for [`replay_of`].
pub(crate) fn idempotency_put(
    table: &str,
    user: &UserId,
    idempotency: Idempotency<'_>,
    (made_attr, made): (&str, String),
    now: Timestamp,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .item("id", s(format!("idem#{user}#{}", idempotency.key)))
        .item(made_attr, s(made))
        .item("fingerprint", s(idempotency.fingerprint))
        .item(
            "expires_at",
            n(now.plus_seconds(IDEMPOTENCY_HOURS * 3600).unix_seconds()),
        )
        .condition_expression("attribute_not_exists(id) OR expires_at < :now")
        .expression_attribute_values(":now", n(now.unix_seconds()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(StoreError::unavailable)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// What an idempotency item names (parsed from `made_attr`), and whether the request matches.
pub(crate) fn replay_of<T, E: std::fmt::Display>(
    old: &Item,
    made_attr: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
    fingerprint: &str,
) -> Result<(T, bool), StoreError> {
    let made = item::parse(old, made_attr, parse).map_err(StoreError::unavailable)?;
    let same = item::opt_str(old, "fingerprint").ok().flatten() == Some(fingerprint);
    Ok((made, same))
}

/// Whether an episode exists and is not deleted (one GetItem of its key).
pub(crate) async fn episode_exists(
    client: &Client,
    episodes_table: &str,
    episode: EpisodeId,
) -> Result<bool, StoreError> {
    let out = client
        .get_item()
        .table_name(episodes_table)
        .key("id", s(episode.to_string()))
        .projection_expression("id, deleted_at")
        .send()
        .await
        .map_err(StoreError::unavailable)?;
    Ok(out.item().is_some_and(|it| !it.contains_key("deleted_at")))
}
