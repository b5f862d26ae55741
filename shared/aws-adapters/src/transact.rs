//! What the stores share about DynamoDB transactions and episodes.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use domain::EpisodeId;
use domain::store::StoreError;

use crate::item::{Item, s};

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
