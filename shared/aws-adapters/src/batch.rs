//! BatchGetItem, the one way: at most 100 keys a call, each key named once (DynamoDB refuses
//! a request that names one twice), unprocessed keys asked for again, and an error — never a
//! silently shorter answer — when some are still unprocessed after the retries. A missing item
//! is simply not in the answer.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use domain::store::StoreError;

use crate::item::Item;

/// DynamoDB's limit on the keys of one BatchGetItem.
const BATCH_GET_MAX: usize = 100;
/// Calls per chunk before unprocessed keys are an error.
const ROUNDS: usize = 5;

/// What to read: the table, its (single-attribute) key, and optionally which attributes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchGet<'a> {
    pub table: &'a str,
    pub key: &'a str,
    pub projection: Option<&'a str>,
    /// `#name` → attribute, for reserved words in the projection.
    pub names: &'a [(&'a str, &'a str)],
    pub consistent: bool,
}

impl BatchGet<'_> {
    /// The items of `ids` (string keys) that exist, in no particular order.
    pub(crate) async fn run(
        &self,
        client: &Client,
        ids: impl IntoIterator<Item = String>,
    ) -> Result<Vec<Item>, StoreError> {
        let keys: BTreeSet<Vec<String>> = ids.into_iter().map(|id| vec![id]).collect();
        self.run_keys(client, &[self.key], keys).await
    }

    /// The same for a table whose key is `self.key` and the sort key `sort` (both strings):
    /// the items of the (partition, sort) pairs that exist.
    pub(crate) async fn run_composite(
        &self,
        client: &Client,
        sort: &str,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<Item>, StoreError> {
        let keys: BTreeSet<Vec<String>> = pairs.into_iter().map(|(p, s)| vec![p, s]).collect();
        self.run_keys(client, &[self.key, sort], keys).await
    }

    async fn run_keys(
        &self,
        client: &Client,
        names: &[&str],
        keys: BTreeSet<Vec<String>>,
    ) -> Result<Vec<Item>, StoreError> {
        let keys: Vec<Vec<String>> = keys.into_iter().collect();
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut wanted: Vec<Item> = chunk
                .iter()
                .map(|values| {
                    names
                        .iter()
                        .zip(values)
                        .map(|(n, v)| ((*n).to_owned(), AttributeValue::S(v.clone())))
                        .collect()
                })
                .collect();
            for _ in 0..ROUNDS {
                if wanted.is_empty() {
                    break;
                }
                let mut request = KeysAndAttributes::builder()
                    .set_keys(Some(wanted))
                    .consistent_read(self.consistent)
                    .set_projection_expression(self.projection.map(str::to_owned));
                for (name, attribute) in self.names {
                    request = request.expression_attribute_names(*name, *attribute);
                }
                let out = client
                    .batch_get_item()
                    .request_items(
                        self.table,
                        request.build().map_err(StoreError::unavailable)?,
                    )
                    .send()
                    .await
                    .map_err(StoreError::unavailable)?;
                if let Some(items) = out.responses().and_then(|r| r.get(self.table)) {
                    found.extend(items.iter().cloned());
                }
                wanted = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
            if !wanted.is_empty() {
                return Err(StoreError::unavailable(std::io::Error::other(format!(
                    "{} keys of {} still unprocessed after {ROUNDS} BatchGetItem calls",
                    wanted.len(),
                    self.table
                ))));
            }
        }
        Ok(found)
    }
}
