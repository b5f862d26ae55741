//! Export records in memory, with the adapter's conditions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::poisoned;
use crate::export::{ActivityExport, ExportState};
use crate::ids::ExportId;
use crate::store::StoreError;
use crate::store::export::Exports;

/// Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryExports(Arc<Mutex<BTreeMap<ExportId, ActivityExport>>>);

impl Exports for InMemoryExports {
    async fn create(&self, export: &ActivityExport) -> Result<bool, StoreError> {
        let mut all = self.0.lock().map_err(|_| poisoned())?;
        if all.contains_key(&export.id) {
            return Ok(false);
        }
        all.insert(export.id, export.clone());
        Ok(true)
    }

    async fn get(&self, id: ExportId) -> Result<Option<ActivityExport>, StoreError> {
        Ok(self.0.lock().map_err(|_| poisoned())?.get(&id).cloned())
    }

    async fn save(
        &self,
        export: &ActivityExport,
        expected: ExportState,
    ) -> Result<bool, StoreError> {
        let mut all = self.0.lock().map_err(|_| poisoned())?;
        match all.get(&export.id) {
            Some(stored) if stored.state == expected => {
                all.insert(export.id, export.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
