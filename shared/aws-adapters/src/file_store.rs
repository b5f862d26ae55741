//! Episode files' records in DynamoDB, each change written with its event (the outbox).
//!
//! Files table: key `id`; index `by-episode` (`episode_id`, `id`) lists an episode's files in
//! upload order (UUIDv7 ids). A pending record carries `expires_at` (TTL) as a backstop; the
//! files worker normally cleans it up first (and the object with it).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use domain::store::file::{FileMetadata, FilePage, FileReader, FileWriteError, FileWriter};
use domain::store::{EpisodeExistence, Page, PageSize, StoreError};
use domain::{
    ContentType, DisplayName, DomainEvent, EpisodeFile, EpisodeId, FileId, FileName, FileSize,
    FileStatus, Sha256, Stamp, Timestamp, UserId,
};

use crate::episode_store::event_put;
use crate::item::{self, Item, n, s};
use crate::transact::{cancellation_reasons, episode_exists};

const INDEX_BY_EPISODE: &str = "by-episode";
/// A pending record outlives its upload URL by this much before DynamoDB's TTL removes it.
const PENDING_RECORD_DAYS: i64 = 2;

#[derive(Debug, Clone)]
pub struct FileTables {
    pub files: String,
    pub episodes: String,
    pub events: String,
}

#[derive(Debug, Clone)]
pub struct DynamoFileStore {
    client: Client,
    tables: FileTables,
}

fn to_item(f: &EpisodeFile) -> Result<Item, StoreError> {
    let mut it = Item::from([
        ("id".to_owned(), s(f.id.to_string())),
        ("episode_id".to_owned(), s(f.episode_id.to_string())),
        ("name".to_owned(), s(f.name.as_str())),
        ("content_type".to_owned(), s(f.content_type.as_str())),
        ("size".to_owned(), n(f.size.get())),
        ("status".to_owned(), s(f.status.as_str())),
        ("object_key".to_owned(), s(&f.key)),
        ("created_at".to_owned(), s(f.created.at.to_string())),
        ("created_by".to_owned(), s(f.created.by.as_str())),
        ("created_by_name".to_owned(), s(f.created.by_name.as_str())),
    ]);
    if let Some(sha) = &f.sha256 {
        it.insert("sha256".into(), s(sha.as_hex()));
    }
    if let Some(id) = &f.upload_id {
        it.insert("upload_id".into(), s(id));
    }
    if let Some(at) = f.available_at {
        it.insert("available_at".into(), s(at.to_string()));
    }
    if f.status == FileStatus::Pending {
        it.insert(
            "expires_at".into(),
            n(f.created.at.plus_days(PENDING_RECORD_DAYS).unix_seconds()),
        );
    }
    Ok(it)
}

pub(crate) fn from_item(it: &Item) -> Result<EpisodeFile, StoreError> {
    let parse = || -> Result<EpisodeFile, item::CorruptItem> {
        Ok(EpisodeFile {
            id: item::parse(it, "id", FileId::parse)?,
            episode_id: item::parse(it, "episode_id", EpisodeId::parse)?,
            name: item::parse(it, "name", |v| FileName::parse(v).map_err(|e| e.message))?,
            content_type: item::parse(it, "content_type", |v| {
                ContentType::parse(v).map_err(|e| e.message)
            })?,
            size: FileSize::new(item::req_u64(it, "size")?)
                .map_err(|e| item::corrupt("size", e.message))?,
            sha256: item::parse_opt(it, "sha256", |v| Sha256::parse(v).map_err(|e| e.message))?,
            status: item::parse(it, "status", |v| {
                FileStatus::parse(v).ok_or_else(|| format!("unknown status {v}"))
            })?,
            key: item::req_str(it, "object_key")?.to_owned(),
            created: Stamp {
                at: item::parse(it, "created_at", Timestamp::parse)?,
                by: item::parse(it, "created_by", UserId::parse)?,
                by_name: DisplayName::new(item::req_str(it, "created_by_name")?),
            },
            available_at: item::parse_opt(it, "available_at", Timestamp::parse)?,
            upload_id: item::opt_str(it, "upload_id")?.map(str::to_owned),
            metadata: metadata_of(it)?,
        })
    };
    parse().map_err(StoreError::unavailable)
}

/// What jobs recorded on the file, one attribute per job type, served as one object.
fn metadata_of(it: &Item) -> Result<Option<serde_json::Value>, item::CorruptItem> {
    let mut m = serde_json::Map::new();
    for what in FileMetadata::ALL {
        if let Some(v) = item::parse_opt(it, what.attribute(), |v| {
            serde_json::from_str::<serde_json::Value>(v)
        })? {
            m.insert(what.key().to_owned(), v);
        }
    }
    Ok((!m.is_empty()).then_some(serde_json::Value::Object(m)))
}

/// Explains a refused write on the file item (`at` is its place in the transaction).
fn explain(err: SdkError<TransactWriteItemsError>, at: usize) -> FileWriteError {
    match cancellation_reasons(&err) {
        Some(reasons) => match reasons.get(at) {
            Some((true, None)) => FileWriteError::NoFile,
            Some((true, Some(old))) => match from_item(old) {
                Ok(f) => FileWriteError::State(f.status),
                Err(e) => FileWriteError::Store(e),
            },
            _ => FileWriteError::Store(StoreError::unavailable(err)),
        },
        None => FileWriteError::Store(StoreError::unavailable(err)),
    }
}

impl DynamoFileStore {
    pub fn new(client: Client, tables: FileTables) -> Self {
        Self { client, tables }
    }

    fn key(id: FileId) -> Item {
        Item::from([("id".to_owned(), s(id.to_string()))])
    }
}

impl FileWriter for DynamoFileStore {
    /// Records a pending file of an episode that exists (checked in the same transaction).
    async fn create(&self, file: &EpisodeFile) -> Result<(), FileWriteError> {
        let check = ConditionCheck::builder()
            .table_name(&self.tables.episodes)
            .key("id", s(file.episode_id.to_string()))
            .condition_expression("attribute_exists(id) AND attribute_not_exists(deleted_at)")
            .build()
            .map_err(StoreError::unavailable)?;
        let put = Put::builder()
            .table_name(&self.tables.files)
            .set_item(Some(to_item(file)?))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(StoreError::unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match cancellation_reasons(&e).as_deref() {
                Some([(true, _), ..]) => Err(FileWriteError::NoEpisode),
                _ => Err(FileWriteError::Store(StoreError::unavailable(e))),
            },
        }
    }

    /// Pending → available, with its `file.uploaded` event.
    async fn make_available(
        &self,
        file: &EpisodeFile,
        sha256: Option<&Sha256>,
        event: &DomainEvent,
    ) -> Result<(), FileWriteError> {
        let mut update = Update::builder()
            .table_name(&self.tables.files)
            .set_key(Some(Self::key(file.id)))
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()))
            .expression_attribute_values(":available", s(FileStatus::Available.as_str()))
            .expression_attribute_values(":at", s(event.occurred_at.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let mut set = String::from("SET #status = :available, available_at = :at");
        if let Some(sha) = sha256 {
            set.push_str(", sha256 = :sha");
            update = update.expression_attribute_values(":sha", s(sha.as_hex()));
        }
        let update = update
            .update_expression(format!("{set} REMOVE expires_at, upload_id"))
            .build()
            .map_err(StoreError::unavailable)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(event_put(&self.tables.events, event)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| explain(e, 0))
    }

    /// Writes an event about an available file (a download), if it still is.
    async fn record(&self, file: &EpisodeFile, event: &DomainEvent) -> Result<(), FileWriteError> {
        let check = ConditionCheck::builder()
            .table_name(&self.tables.files)
            .set_key(Some(Self::key(file.id)))
            .condition_expression("#status = :available")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":available", s(FileStatus::Available.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::unavailable)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(event_put(&self.tables.events, event)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| explain(e, 0))
    }

    /// Removes an available file's record, with its `file.deleted` event.
    async fn delete(&self, file: &EpisodeFile, event: &DomainEvent) -> Result<(), FileWriteError> {
        let delete = Delete::builder()
            .table_name(&self.tables.files)
            .set_key(Some(Self::key(file.id)))
            .condition_expression("attribute_exists(id)")
            .build()
            .map_err(StoreError::unavailable)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(event_put(&self.tables.events, event)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| explain(e, 0))
    }

    /// Records what a job found about a file (`meta_checksum`, `meta_probe`), and for the
    /// checksum job the file's SHA-256. False when the file is gone.
    async fn record_metadata(
        &self,
        id: FileId,
        what: FileMetadata,
        value: &serde_json::Value,
        sha256: Option<&Sha256>,
    ) -> Result<bool, StoreError> {
        let text = serde_json::to_string(value).map_err(StoreError::unavailable)?;
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.files)
            .set_key(Some(Self::key(id)))
            .condition_expression("attribute_exists(id)")
            .expression_attribute_names("#m", what.attribute())
            .expression_attribute_values(":m", s(text));
        let mut expr = String::from("SET #m = :m");
        if let Some(sha) = sha256 {
            expr.push_str(", sha256 = :sha");
            update = update.expression_attribute_values(":sha", s(sha.as_hex()));
        }
        match update.update_expression(expr).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    /// Records a file that is available from the start (made by a job), with its event.
    async fn create_available(
        &self,
        file: &EpisodeFile,
        event: &DomainEvent,
    ) -> Result<(), FileWriteError> {
        let put = Put::builder()
            .table_name(&self.tables.files)
            .set_item(Some(to_item(file)?))
            .condition_expression("attribute_not_exists(id)")
            // Already there: the caller learns it as `State` of the file that is.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::unavailable)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(event_put(&self.tables.events, event)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| explain(e, 0))
    }

    /// Removes a pending record (an upload abandoned, or withdrawn); no event: nothing was
    /// ever there. False when it is not pending any more.
    async fn delete_pending(&self, id: FileId) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.files)
            .set_key(Some(Self::key(id)))
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":pending",
                AttributeValue::S(FileStatus::Pending.as_str().into()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}

impl FileReader for DynamoFileStore {
    async fn get(&self, id: FileId) -> Result<Option<EpisodeFile>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.files)
            .set_key(Some(Self::key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.item().map(from_item).transpose()
    }

    /// An episode's files, oldest first, a page at a time.
    async fn list(
        &self,
        episode: EpisodeId,
        limit: PageSize,
        after: Option<FileId>,
    ) -> Result<FilePage, StoreError> {
        let wanted = usize::from(limit.get());
        let start = after.map(|a| {
            Item::from([
                ("id".to_owned(), s(a.to_string())),
                ("episode_id".to_owned(), s(episode.to_string())),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.tables.files)
            .index_name(INDEX_BY_EPISODE)
            .key_condition_expression("episode_id = :e")
            .expression_attribute_values(":e", s(episode.to_string()))
            .limit(i32::from(limit.get()) + 1)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let items = out
            .items()
            .iter()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_query(
            items,
            wanted,
            out.last_evaluated_key().is_some(),
            |x| x.id,
        ))
    }
}

impl EpisodeExistence for DynamoFileStore {
    /// Whether an episode exists and is not deleted.
    async fn episode_exists(&self, episode: EpisodeId) -> Result<bool, StoreError> {
        episode_exists(&self.client, &self.tables.episodes, episode).await
    }
}
