//! The exports of the activity log: their records (state, files, who asked) and the bucket's
//! side of writing their files part by part.

use std::future::Future;
use std::time::Duration;

use super::StoreError;
use super::object::ObjectTransfers;
use crate::export::{ActivityExport, Download, ExportFormat, ExportState, LINK_SECONDS};
use crate::ids::ExportId;
use crate::time::Timestamp;

/// A fresh link to each file of a finished export (JSON Lines, then CSV), valid for
/// [`LINK_SECONDS`] and saving the file under its name. Signing calls nothing.
pub async fn download_links(
    objects: &impl ObjectTransfers,
    export: &ActivityExport,
) -> Result<Vec<Download>, StoreError> {
    let ttl = Duration::from_secs(LINK_SECONDS);
    let expires_at = Timestamp::now().plus_seconds(i64::try_from(LINK_SECONDS).unwrap_or(3600));
    let mut out = Vec::new();
    for format in ExportFormat::ALL {
        let Some(file) = export.files.iter().find(|f| f.format == format) else {
            continue;
        };
        let disposition = format!("attachment; filename=\"{}\"", format.file_name(export.id));
        let signed = objects
            .presign_get(&format.key(export.id), &disposition, ttl)
            .await?;
        out.push(Download {
            format,
            url: signed.url,
            bytes: file.bytes,
            expires_at,
        });
    }
    Ok(out)
}

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
