//! The search index in DynamoDB (the template's `SearchTable`, keys `pk` and `sk`):
//!
//! * one entry per (token, episode): `pk` = `t#` and the token's group (its first two
//!   characters), `sk` = `<token>#<episode id>`, `f` = the fields it is in (a bit set). A word
//!   is one Query: its group, `begins_with(sk, word)`.
//! * one record per episode: `pk` = `e#<episode id>`, `sk` = `record`, with `terms` (a map
//!   of token to fields), `pending` (a string set), `v` (the episode's version) and, while a
//!   worker holds it, `claim_owner` and `claim_until` (Unix seconds).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use domain::EpisodeId;
use domain::search::{Fields, IndexState, MAX_MATCHES_PER_WORD, Match, Plan, Terms, Token};
use domain::store::StoreError;
use domain::store::search::{Claim, ClaimLost, LookupError, SearchIndexReader, SearchIndexWriter};
use domain::time::Timestamp;

use crate::item::{self, Item, n, s};
use crate::realtime_store::applied;

/// DynamoDB's limit on the requests of one BatchWriteItem.
const BATCH_WRITE_MAX: usize = 25;
/// Rounds of unprocessed writes asked for again before it is an error.
const UNPROCESSED_RETRIES: u32 = 5;
const RECORD_SK: &str = "record";

#[derive(Debug, Clone)]
pub struct DynamoSearchIndex {
    client: Client,
    table: String,
}

impl DynamoSearchIndex {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

fn record_key(episode: EpisodeId) -> Item {
    Item::from([
        ("pk".to_owned(), s(format!("e#{episode}"))),
        ("sk".to_owned(), s(RECORD_SK)),
    ])
}

fn entry_key(token: &Token, episode: EpisodeId) -> Item {
    Item::from([
        ("pk".to_owned(), s(format!("t#{}", token.group()))),
        ("sk".to_owned(), s(format!("{token}#{episode}"))),
    ])
}

fn fields_from(value: &AttributeValue) -> Option<Fields> {
    value
        .as_n()
        .ok()
        .and_then(|v| v.parse().ok())
        .and_then(Fields::from_bits)
}

fn state_from(it: &Item) -> Result<IndexState, StoreError> {
    let corrupt =
        |what: &'static str, problem: &str| StoreError::unavailable(item::corrupt(what, problem));
    let terms = match it.get("terms") {
        None => Terms::default(),
        Some(AttributeValue::M(m)) => Terms::from_entries(
            m.iter()
                .map(|(t, f)| match (Token::parse(t), fields_from(f)) {
                    (Some(t), Some(f)) => Ok((t, f)),
                    _ => Err(corrupt(
                        "terms",
                        "holds an entry that is not a token's fields",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(corrupt("terms", "is not a map")),
    };
    let pending = match it.get("pending") {
        None => BTreeSet::new(),
        Some(AttributeValue::Ss(set)) => set
            .iter()
            .map(|t| Token::parse(t).ok_or_else(|| corrupt("pending", "holds a non-token")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(corrupt("pending", "is not a string set")),
    };
    let version = item::opt_u64(it, "v").map_err(StoreError::unavailable)?;
    Ok(IndexState {
        terms,
        pending,
        version,
    })
}

fn owner(claim: &Claim) -> HashMap<String, AttributeValue> {
    HashMap::from([(":o".to_owned(), s(claim.owner.as_str()))])
}

impl DynamoSearchIndex {
    /// Runs the requests 25 a call, asking again for what DynamoDB left unprocessed.
    async fn write_all(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut left = chunk.to_vec();
            let mut attempt = 0;
            while !left.is_empty() {
                if attempt > UNPROCESSED_RETRIES {
                    return Err(StoreError::unavailable(std::io::Error::other(format!(
                        "{} index writes still unprocessed",
                        left.len()
                    ))));
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt))).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, left)
                    .send()
                    .await
                    .map_err(StoreError::unavailable)?;
                left = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                attempt += 1;
            }
        }
        Ok(())
    }
}

impl SearchIndexWriter for DynamoSearchIndex {
    async fn state(&self, episode: EpisodeId) -> Result<Option<IndexState>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(record_key(episode)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.item().map(state_from).transpose()
    }

    async fn claim(
        &self,
        episode: EpisodeId,
        claim: &Claim,
        now: Timestamp,
    ) -> Result<Option<IndexState>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(record_key(episode)))
            .update_expression("SET claim_owner = :o, claim_until = :u")
            .condition_expression("attribute_not_exists(claim_until) OR claim_until < :now")
            .set_expression_attribute_values(Some(
                owner(claim)
                    .into_iter()
                    .chain([
                        (":u".to_owned(), n(claim.until.unix_seconds())),
                        (":now".to_owned(), n(now.unix_seconds())),
                    ])
                    .collect(),
            ))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(state_from(out.attributes().unwrap_or(&Item::new()))?)),
            Err(e) => applied(Err::<(), _>(e)).map(|_| None),
        }
    }

    async fn reserve(
        &self,
        episode: EpisodeId,
        claim: &Claim,
        tokens: &BTreeSet<Token>,
    ) -> Result<Result<(), ClaimLost>, StoreError> {
        if tokens.is_empty() {
            return Ok(Ok(()));
        }
        let set = AttributeValue::Ss(tokens.iter().map(ToString::to_string).collect());
        let done = applied(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(record_key(episode)))
                .update_expression("ADD pending :t")
                .condition_expression("claim_owner = :o")
                .set_expression_attribute_values(Some(
                    owner(claim)
                        .into_iter()
                        .chain([(":t".to_owned(), set)])
                        .collect(),
                ))
                .send()
                .await,
        )?;
        Ok(if done {
            Ok(())
        } else {
            Err(ClaimLost(episode))
        })
    }

    async fn advance(
        &self,
        episode: EpisodeId,
        from: u64,
        to: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        applied(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(record_key(episode)))
                .update_expression("SET v = :to")
                .condition_expression(
                    "v = :from AND attribute_not_exists(pending) AND \
                     (attribute_not_exists(claim_until) OR claim_until < :now)",
                )
                .expression_attribute_values(":from", n(from))
                .expression_attribute_values(":to", n(to))
                .expression_attribute_values(":now", n(now.unix_seconds()))
                .send()
                .await,
        )
    }

    async fn apply(&self, episode: EpisodeId, plan: &Plan) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(plan.entry_writes());
        for (token, fields) in &plan.puts {
            let mut it = entry_key(token, episode);
            it.insert("f".into(), n(fields.bits()));
            let put = PutRequest::builder()
                .set_item(Some(it))
                .build()
                .map_err(StoreError::unavailable)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for token in &plan.deletes {
            let delete = DeleteRequest::builder()
                .set_key(Some(entry_key(token, episode)))
                .build()
                .map_err(StoreError::unavailable)?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        self.write_all(requests).await
    }

    async fn release(
        &self,
        episode: EpisodeId,
        claim: &Claim,
        terms: &Terms,
        version: Option<u64>,
    ) -> Result<Result<(), ClaimLost>, StoreError> {
        let done = if terms.is_empty() {
            applied(
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(record_key(episode)))
                    .condition_expression("claim_owner = :o")
                    .set_expression_attribute_values(Some(owner(claim)))
                    .send()
                    .await,
            )?
        } else {
            let mut it = record_key(episode);
            it.insert(
                "terms".into(),
                AttributeValue::M(
                    terms
                        .iter()
                        .map(|(t, f)| (t.to_string(), n(f.bits())))
                        .collect(),
                ),
            );
            if let Some(v) = version {
                it.insert("v".into(), n(v));
            }
            applied(
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(it))
                    .condition_expression("claim_owner = :o")
                    .set_expression_attribute_values(Some(owner(claim)))
                    .send()
                    .await,
            )?
        };
        Ok(if done {
            Ok(())
        } else {
            Err(ClaimLost(episode))
        })
    }
}

impl SearchIndexReader for DynamoSearchIndex {
    async fn matches(&self, word: &Token) -> Result<Vec<Match>, LookupError> {
        // A one-character word's group holds its own token only: it finds only that.
        let prefix = word.to_string();
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND begins_with(sk, :w)")
                .expression_attribute_values(":p", s(format!("t#{}", word.group())))
                .expression_attribute_values(":w", s(prefix.as_str()))
                .projection_expression("sk, f")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            for it in out.items() {
                let entry = item::req_str(it, "sk")
                    .ok()
                    .and_then(|sk| sk.rsplit_once('#'))
                    .and_then(|(_, id)| EpisodeId::parse(id).ok())
                    .zip(it.get("f").and_then(fields_from));
                let Some((episode, fields)) = entry else {
                    return Err(StoreError::unavailable(item::corrupt(
                        "sk",
                        "is not a token's entry",
                    ))
                    .into());
                };
                found.push(Match { episode, fields });
            }
            if found.len() > MAX_MATCHES_PER_WORD {
                return Err(LookupError::TooBroad(word.clone()));
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(found);
            }
        }
    }
}
