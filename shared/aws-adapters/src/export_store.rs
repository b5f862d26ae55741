//! The exports of the activity log in DynamoDB: one item per export, key `id`. Its `expires_at`
//! is the TTL (the template's `ExportRetentionDays`); the table's stream hands each new one to
//! the export worker.

use aws_sdk_dynamodb::Client;
use domain::export::{ActivityExport, ExportFile, ExportFilters, ExportState};
use domain::store::StoreError;
use domain::store::export::Exports;
use domain::{Actor, CorrelationId, DisplayName, EventId, ExportId, Role, Timestamp, UserId};

use crate::item::{self, Item, n, s};
use crate::realtime_store::applied;

#[derive(Debug, Clone)]
pub struct DynamoExportStore {
    client: Client,
    table: String,
}

impl DynamoExportStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

fn key(id: ExportId) -> Item {
    Item::from([("id".to_owned(), s(id.to_string()))])
}

fn to_item(x: &ActivityExport) -> Result<Item, StoreError> {
    let json = |v: &dyn erased::Json| v.text().map_err(StoreError::unavailable);
    let mut it = key(x.id);
    it.insert("requested_by_id".into(), s(x.requested_by.id.as_str()));
    it.insert("requested_by_name".into(), s(x.requested_by.name.as_str()));
    it.insert(
        "requested_by_role".into(),
        s(crate::activity_store::role_str(x.requested_by.role)),
    );
    it.insert("filters".into(), s(json(&x.filters)?));
    it.insert("state".into(), s(x.state.as_str()));
    it.insert("created_at".into(), s(x.created_at.to_string()));
    it.insert("updated_at".into(), s(x.updated_at.to_string()));
    it.insert("entries".into(), n(x.entries));
    it.insert("files".into(), s(json(&x.files)?));
    if let Some(e) = &x.error {
        it.insert("error".into(), s(e.as_str()));
    }
    if let Some(a) = x.audit_id {
        it.insert("audit_id".into(), s(a.to_string()));
    }
    it.insert("correlation_id".into(), s(x.correlation_id.as_str()));
    if let Some(r) = &x.request_id {
        it.insert("request_id".into(), s(r.as_str()));
    }
    it.insert("expires_at".into(), n(x.expires_at.unix_seconds()));
    Ok(it)
}

/// JSON text of the export's structured attributes.
mod erased {
    pub trait Json {
        fn text(&self) -> Result<String, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn text(&self) -> Result<String, serde_json::Error> {
            serde_json::to_string(self)
        }
    }
}

fn from_item(it: &Item) -> Result<ActivityExport, StoreError> {
    let parse = || -> Result<ActivityExport, item::CorruptItem> {
        let state = item::req_str(it, "state")?;
        Ok(ActivityExport {
            id: item::parse(it, "id", ExportId::parse)?,
            requested_by: Actor {
                id: item::parse(it, "requested_by_id", UserId::parse)?,
                name: DisplayName::new(item::req_str(it, "requested_by_name")?),
                role: Role::from_claim(item::opt_str(it, "requested_by_role")?),
            },
            filters: item::parse(it, "filters", |v| serde_json::from_str::<ExportFilters>(v))?,
            state: ExportState::parse(state).ok_or_else(|| item::corrupt("state", state))?,
            created_at: item::parse(it, "created_at", Timestamp::parse)?,
            updated_at: item::parse(it, "updated_at", Timestamp::parse)?,
            entries: item::req_u64(it, "entries")?,
            files: item::parse(it, "files", |v| serde_json::from_str::<Vec<ExportFile>>(v))?,
            error: item::opt_str(it, "error")?.map(str::to_owned),
            audit_id: item::parse_opt(it, "audit_id", EventId::parse)?,
            correlation_id: item::parse(it, "correlation_id", CorrelationId::parse)?,
            request_id: item::opt_str(it, "request_id")?.map(str::to_owned),
            expires_at: i64::try_from(item::req_u64(it, "expires_at")?)
                .ok()
                .and_then(Timestamp::from_unix_seconds)
                .ok_or_else(|| item::corrupt("expires_at", "is not a time"))?,
        })
    };
    parse().map_err(StoreError::unavailable)
}

impl Exports for DynamoExportStore {
    async fn create(&self, export: &ActivityExport) -> Result<bool, StoreError> {
        applied(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(export)?))
                .condition_expression("attribute_not_exists(id)")
                .send()
                .await,
        )
    }

    async fn get(&self, id: ExportId) -> Result<Option<ActivityExport>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.item().map(from_item).transpose()
    }

    async fn save(
        &self,
        export: &ActivityExport,
        expected: ExportState,
    ) -> Result<bool, StoreError> {
        applied(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(export)?))
                .condition_expression("#state = :expected")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":expected", s(expected.as_str()))
                .send()
                .await,
        )
    }
}
