//! The exports of the activity log: their records (state, files, who asked) and the bucket's
//! side of writing their files part by part.

use std::future::Future;

use super::StoreError;
use crate::export::{ActivityExport, ExportState};
use crate::ids::ExportId;

/// The export records.
pub trait Exports {
    /// Stores a new export; `false` when one of its id is there already.
    fn create(
        &self,
        export: &ActivityExport,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The export, if it exists (strongly consistent).
    fn get(
        &self,
        id: ExportId,
    ) -> impl Future<Output = Result<Option<ActivityExport>, StoreError>> + Send;

    /// Writes the export as it is now, on condition the stored one is still in `expected`;
    /// `false` when it is not (another run moved it on).
    fn save(
        &self,
        export: &ActivityExport,
        expected: ExportState,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
