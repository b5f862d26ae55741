//! The export records' port.

use domain::export::{
    ActivityExport, ExportFile, ExportFilters, ExportFormat, ExportState, Outcome,
};
use domain::store::export::Exports;
use domain::{Actor, CorrelationId, DisplayName, EventType, Role, Timestamp, UserId};

use crate::World;

fn asked() -> ActivityExport {
    ActivityExport::requested(
        Actor {
            id: UserId::parse("contract-admin").unwrap_or_else(|e| panic!("{e}")),
            name: DisplayName::new("Contract Admin"),
            role: Role::Admin,
        },
        ExportFilters {
            action: Some(EventType::EpisodeUpdated),
            from: Timestamp::parse("2026-11-01T00:00:00.000Z").ok(),
            ..Default::default()
        },
        (CorrelationId::generate(), Some("req-1".into())),
        Timestamp::now(),
        730,
    )
}

pub async fn an_export_is_created_once_and_moves_only_from_the_state_read(w: &impl World) {
    let store = w.exports();
    let ok = |r: Result<bool, domain::store::StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
    let export = asked();
    assert!(ok(store.create(&export).await));
    assert!(!ok(store.create(&export).await), "one id, one export");
    let read = store.get(export.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.as_ref(), Some(&export), "read back whole");

    let running = export.running(Timestamp::now());
    assert!(ok(store.save(&running, ExportState::Queued).await));
    assert!(
        !ok(store.save(&running, ExportState::Queued).await),
        "a second run does not take it"
    );
    let done = running.finished(
        Outcome::Written {
            entries: 12,
            files: vec![
                ExportFile {
                    format: ExportFormat::JsonLines,
                    bytes: 1200,
                },
                ExportFile {
                    format: ExportFormat::Csv,
                    bytes: 900,
                },
            ],
        },
        Timestamp::now(),
    );
    assert!(ok(store.save(&done, ExportState::Running).await));
    let read = store.get(done.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, Some(done));
    let missing = store
        .get(domain::ExportId::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(missing, None);
}
