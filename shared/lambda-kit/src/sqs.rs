//! SQS event sources: the partial batch response every worker returns, so one bad message
//! fails alone and its batch goes on (`ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};

/// The response naming the messages that failed; the others are deleted from the queue.
pub fn batch_response<I, S>(failed_message_ids: I) -> SqsBatchResponse
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed_message_ids
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.into();
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_failed_message() {
        let r = batch_response(["a", "b"]);
        let ids: Vec<_> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            serde_json::to_value(batch_response(Vec::<String>::new())).unwrap()["batchItemFailures"],
            serde_json::json!([])
        );
    }
}
