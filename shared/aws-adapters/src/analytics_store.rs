//! The analytics in DynamoDB (the template's `AnalyticsTable`, keys `pk` and `sk`):
//!
//! * `e#<episode>` / `timeline`: the episode's [`Timeline`] (JSON in `timeline`) and its `rev`;
//! * `status` / `<status>`: `n`, episodes in that status now;
//! * `stay#<status>` / `<left>#<episode>#<version>`: `seconds`, one finished stay;
//! * `published` / `<Monday>`: `n`, episodes first published that week;
//! * `job#<type>` / `<finished>#<job>#<attempt>`: `ok`, `seconds`, one attempt's outcome.
//!
//! A timeline and what its change does to the figures are one transaction, conditional on the
//! revision read. Timestamps are RFC 3339 with milliseconds in UTC, so they sort as strings.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use domain::analytics::{AttemptState, Changes, JobAttempt, Mark, Period, Stay, Timeline};
use domain::store::StoreError;
use domain::store::analytics::{AnalyticsReader, AnalyticsWriter};
use domain::{EpisodeId, EpisodeStatus, JobType};

use crate::item::{self, Item, n, s};
use crate::transact::cancellation_reasons;

#[derive(Debug, Clone)]
pub struct DynamoAnalyticsStore {
    client: Client,
    table: String,
}

impl DynamoAnalyticsStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn timeline_key(episode: EpisodeId) -> Item {
    key(format!("e#{episode}"), "timeline")
}

fn stay_key(stay: &Stay) -> Item {
    key(
        format!("stay#{}", stay.status.as_str()),
        format!("{}#{}#{}", stay.left, stay.episode, stay.ended_by),
    )
}

fn counter(table: &str, k: Item, by: i64) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(k))
        .update_expression("ADD n :d")
        .expression_attribute_values(":d", n(by))
        .build()
        .map_err(StoreError::unavailable)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

fn f64_of(it: &Item, name: &'static str) -> Result<f64, StoreError> {
    match it.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::unavailable(item::corrupt(name, "is not a number"))),
        _ => Err(StoreError::unavailable(item::corrupt(name, "is missing"))),
    }
}

impl DynamoAnalyticsStore {
    /// Every item of `pk` whose sort key is within `[from, to)` (all of them without bounds).
    async fn query(
        &self,
        pk: &str,
        range: Option<(String, String)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":p", s(pk))
                .set_exclusive_start_key(start);
            q = match &range {
                Some((from, to)) => q
                    .key_condition_expression("pk = :p AND sk BETWEEN :f AND :t")
                    .expression_attribute_values(":f", s(from.as_str()))
                    .expression_attribute_values(":t", s(to.as_str())),
                None => q.key_condition_expression("pk = :p"),
            };
            let page = q.send().await.map_err(StoreError::unavailable)?;
            out.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// The sort-key range of facts that happened within the period: from its start up to, not
    /// including, its end (`#` sorts before every digit, so `<to>` itself is left out).
    fn happened_within(period: Period) -> Option<(String, String)> {
        Some((period.from.to_string(), format!("{}#", period.to)))
            .filter(|_| period.from < period.to)
    }
}

/// Whether a transaction was cancelled because another held one of its items.
fn conflicted(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("TransactionConflict")),
        Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
        _ => false,
    }
}

impl AnalyticsWriter for DynamoAnalyticsStore {
    async fn timeline(&self, episode: EpisodeId) -> Result<(Timeline, u64), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(timeline_key(episode)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let Some(it) = out.item() else {
            return Ok((Timeline::default(), 0));
        };
        let timeline =
            serde_json::from_str(item::req_str(it, "timeline").map_err(StoreError::unavailable)?)
                .map_err(StoreError::unavailable)?;
        let revision = item::req_u64(it, "rev").map_err(StoreError::unavailable)?;
        Ok((timeline, revision))
    }

    async fn save(
        &self,
        episode: EpisodeId,
        after: &Timeline,
        revision: u64,
        changes: &Changes,
    ) -> Result<bool, StoreError> {
        let mut it = timeline_key(episode);
        it.insert(
            "timeline".into(),
            s(serde_json::to_string(after).map_err(StoreError::unavailable)?),
        );
        it.insert("rev".into(), n(revision + 1));
        let mut put = Put::builder().table_name(&self.table).set_item(Some(it));
        put = if revision == 0 {
            put.condition_expression("attribute_not_exists(rev)")
        } else {
            put.condition_expression("rev = :r")
                .expression_attribute_values(":r", n(revision))
        };
        let mut items = vec![
            TransactWriteItem::builder()
                .put(put.build().map_err(StoreError::unavailable)?)
                .build(),
        ];
        for (status, by) in &changes.counts {
            items.push(counter(&self.table, key("status", status.as_str()), *by)?);
        }
        for (week, by) in &changes.weeks {
            items.push(counter(&self.table, key("published", week.as_str()), *by)?);
        }
        for stay in &changes.stays_removed {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(stay_key(stay)))
                .build()
                .map_err(StoreError::unavailable)?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        for stay in &changes.stays_added {
            let mut it = stay_key(stay);
            it.insert("seconds".into(), n(stay.seconds()));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(it))
                .build()
                .map_err(StoreError::unavailable)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            // The timeline moved on (its condition failed), or another transaction held one of
            // the items (a counter, shared by every episode's moves): read again and retry.
            Err(e) if conflicted(&e) => Ok(false),
            Err(e) => match cancellation_reasons(&e) {
                Some(reasons) if reasons.first().is_some_and(|(failed, _)| *failed) => Ok(false),
                _ => Err(StoreError::unavailable(e)),
            },
        }
    }

    async fn record_attempt(&self, a: &JobAttempt) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("attempt#{}", a.job),
                a.attempt.to_string(),
            )))
            .expression_attribute_values(":t", s(a.job_type.as_str()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        let update = match a.mark {
            Mark::Started(at) => update
                .update_expression("SET job_type = :t, started = if_not_exists(started, :s)")
                .expression_attribute_values(":s", s(at.to_string())),
            Mark::Ended { succeeded, at } => update
                .update_expression(
                    "SET job_type = :t, ended = if_not_exists(ended, :e), ok = if_not_exists(ok, :ok)",
                )
                .expression_attribute_values(":e", s(at.to_string()))
                .expression_attribute_values(":ok", AttributeValue::Bool(succeeded)),
        };
        let out = update.send().await.map_err(StoreError::unavailable)?;
        let it = out.attributes().cloned().unwrap_or_default();
        let time = |name: &'static str| {
            item::parse_opt(&it, name, domain::Timestamp::parse).map_err(StoreError::unavailable)
        };
        let state = AttemptState {
            started: time("started")?,
            ended: match (time("ended")?, it.get("ok")) {
                (Some(at), Some(AttributeValue::Bool(ok))) => Some((*ok, at)),
                _ => None,
            },
        };
        let Some(o) = state.outcome(a) else {
            return Ok(());
        };
        let mut fact = key(
            format!("job#{}", o.job_type.as_str()),
            format!("{}#{}#{}", o.finished, o.job, o.attempt),
        );
        fact.insert("ok".into(), AttributeValue::Bool(o.succeeded));
        if let Some(seconds) = o.seconds {
            fact.insert("seconds".into(), n(seconds));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(fact))
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }
}

impl AnalyticsReader for DynamoAnalyticsStore {
    async fn status_counts(&self) -> Result<BTreeMap<EpisodeStatus, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for it in self.query("status", None).await? {
            let status =
                item::parse(&it, "sk", EpisodeStatus::parse).map_err(StoreError::unavailable)?;
            let count = f64_of(&it, "n")?;
            counts.insert(status, count.max(0.0) as u64);
        }
        Ok(counts)
    }

    async fn stays(&self, status: EpisodeStatus, period: Period) -> Result<Vec<f64>, StoreError> {
        let Some(range) = Self::happened_within(period) else {
            return Ok(Vec::new());
        };
        self.query(&format!("stay#{}", status.as_str()), Some(range))
            .await?
            .iter()
            .map(|it| f64_of(it, "seconds"))
            .collect()
    }

    async fn published_weeks(&self, period: Period) -> Result<BTreeMap<String, u64>, StoreError> {
        if period.from >= period.to {
            return Ok(BTreeMap::new());
        }
        let mut weeks = BTreeMap::new();
        for it in self.query("published", Some(period.weeks())).await? {
            let week = item::req_str(&it, "sk").map_err(StoreError::unavailable)?;
            let count = f64_of(&it, "n")?;
            if count > 0.0 {
                weeks.insert(week.to_owned(), count as u64);
            }
        }
        Ok(weeks)
    }

    async fn job_outcomes(
        &self,
        job_type: JobType,
        period: Period,
    ) -> Result<Vec<(bool, Option<f64>)>, StoreError> {
        let Some(range) = Self::happened_within(period) else {
            return Ok(Vec::new());
        };
        self.query(&format!("job#{}", job_type.as_str()), Some(range))
            .await?
            .iter()
            .map(|it| {
                let ok = matches!(it.get("ok"), Some(AttributeValue::Bool(true)));
                let seconds = it
                    .contains_key("seconds")
                    .then(|| f64_of(it, "seconds"))
                    .transpose()?;
                Ok((ok, seconds))
            })
            .collect()
    }
}
