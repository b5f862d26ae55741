//! The files port: conditional writes with their events, pages in upload order.

use domain::store::file::{FileMetadata, FileReader, FileWriteError, FileWriter};
use domain::store::{EpisodeExistence, PageSize};
use domain::{DomainEvent, EpisodeId, EventType, FileStatus, Sha256, Timestamp};
use serde_json::json;

use crate::World;
use crate::sample::{self, context};

fn sha() -> Sha256 {
    Sha256::parse("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
        .unwrap_or_else(|e| panic!("{e}"))
}

pub async fn create_needs_a_live_episode(w: &impl World) {
    let missing = EpisodeId::new();
    let r = w.files().create(&sample::file(missing)).await;
    assert!(matches!(r, Err(FileWriteError::NoEpisode)), "{r:?}");
    let episode = w.episode().await;
    assert!(w.files().episode_exists(episode).await.unwrap_or(false));
    let file = sample::file(episode);
    assert!(w.files().create(&file).await.is_ok());
    assert_eq!(w.files().get(file.id).await.ok().flatten(), Some(file));
    w.delete_episode(episode).await;
    assert!(!w.files().episode_exists(episode).await.unwrap_or(true));
    let r = w.files().create(&sample::file(episode)).await;
    assert!(matches!(r, Err(FileWriteError::NoEpisode)), "{r:?}");
    // Pending records are not events: nobody hears of a file until it is uploaded.
    assert!(
        w.events(episode)
            .await
            .iter()
            .all(|t| *t != EventType::FileUploaded)
    );
}

pub async fn pending_becomes_available_once_with_its_event(w: &impl World) {
    let episode = w.episode().await;
    let mut file = sample::file(episode);
    file.upload_id = Some("an-upload".into());
    w.files()
        .create(&file)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let at = Timestamp::now();
    let done = file.made_available(Some(&sha()), at);
    let event = DomainEvent::file_uploaded(&context("alice"), &done, at);
    let r = w.files().make_available(&file, Some(&sha()), &event).await;
    assert!(r.is_ok(), "{r:?}");
    let stored = w.files().get(file.id).await.ok().flatten();
    assert_eq!(
        stored.as_ref().map(|f| f.status),
        Some(FileStatus::Available)
    );
    assert_eq!(stored.as_ref().and_then(|f| f.sha256.clone()), Some(sha()));
    assert_eq!(stored.as_ref().and_then(|f| f.upload_id.clone()), None);
    assert_eq!(stored.and_then(|f| f.available_at), Some(event.occurred_at));
    // Twice: refused with the state it is in, and no second event.
    let again = DomainEvent::file_uploaded(&context("alice"), &done, Timestamp::now());
    let r = w.files().make_available(&file, None, &again).await;
    assert!(
        matches!(r, Err(FileWriteError::State(FileStatus::Available))),
        "{r:?}"
    );
    let missing = sample::file(episode);
    let r = w
        .files()
        .make_available(&missing, None, &sample::uploaded(&missing))
        .await;
    assert!(matches!(r, Err(FileWriteError::NoFile)), "{r:?}");
    assert_eq!(w.events(episode).await, [EventType::FileUploaded]);
}

pub async fn an_event_about_a_file_needs_it_available(w: &impl World) {
    let episode = w.episode().await;
    let file = sample::file(episode);
    w.files()
        .create(&file)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let downloaded = |f| DomainEvent::file_downloaded(&context("bob"), f, Timestamp::now());
    let r = w.files().record(&file, &downloaded(&file)).await;
    assert!(
        matches!(r, Err(FileWriteError::State(FileStatus::Pending))),
        "{r:?}"
    );
    let gone = sample::available(episode);
    let r = w.files().record(&gone, &downloaded(&gone)).await;
    assert!(matches!(r, Err(FileWriteError::NoFile)), "{r:?}");
    let ready = sample::available(episode);
    w.files()
        .create_available(&ready, &sample::uploaded(&ready))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(w.files().record(&ready, &downloaded(&ready)).await.is_ok());
    assert_eq!(
        w.events(episode).await,
        [EventType::FileUploaded, EventType::FileDownloaded]
    );
}

pub async fn only_a_pending_record_is_withdrawn(w: &impl World) {
    let episode = w.episode().await;
    let pending = sample::file(episode);
    w.files()
        .create(&pending)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ready = sample::available(episode);
    w.files()
        .create_available(&ready, &sample::uploaded(&ready))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        w.files().delete_pending(ready.id).await,
        Ok(false)
    ));
    assert!(matches!(
        w.files().delete_pending(pending.id).await,
        Ok(true)
    ));
    assert!(matches!(
        w.files().delete_pending(pending.id).await,
        Ok(false)
    ));
    assert_eq!(w.files().get(pending.id).await.ok().flatten(), None);
    assert!(w.files().get(ready.id).await.ok().flatten().is_some());
}

pub async fn delete_removes_the_record_with_its_event(w: &impl World) {
    let episode = w.episode().await;
    let ready = sample::available(episode);
    w.files()
        .create_available(&ready, &sample::uploaded(&ready))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deleted = |f| DomainEvent::file_deleted(&context("alice"), f, Timestamp::now());
    assert!(w.files().delete(&ready, &deleted(&ready)).await.is_ok());
    assert_eq!(w.files().get(ready.id).await.ok().flatten(), None);
    let r = w.files().delete(&ready, &deleted(&ready)).await;
    assert!(matches!(r, Err(FileWriteError::NoFile)), "{r:?}");
    assert_eq!(
        w.events(episode).await,
        [EventType::FileUploaded, EventType::FileDeleted]
    );
}

pub async fn a_file_made_available_is_created_once(w: &impl World) {
    let episode = w.episode().await;
    let made = sample::available(episode);
    assert!(
        w.files()
            .create_available(&made, &sample::uploaded(&made))
            .await
            .is_ok()
    );
    let r = w
        .files()
        .create_available(&made, &sample::uploaded(&made))
        .await;
    assert!(
        matches!(r, Err(FileWriteError::State(FileStatus::Available))),
        "{r:?}"
    );
    assert_eq!(w.files().get(made.id).await.ok().flatten(), Some(made));
    assert_eq!(w.events(episode).await, [EventType::FileUploaded]);
}

pub async fn metadata_is_recorded_on_existing_files_only(w: &impl World) {
    let episode = w.episode().await;
    let ready = sample::available(episode);
    w.files()
        .create_available(&ready, &sample::uploaded(&ready))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let checksum = json!({ "sha256": sha().as_hex(), "size": 11 });
    let probe = json!({ "duration_seconds": 2.0 });
    let files = w.files();
    assert!(matches!(
        files
            .record_metadata(ready.id, FileMetadata::Checksum, &checksum, Some(&sha()))
            .await,
        Ok(true)
    ));
    assert!(matches!(
        files
            .record_metadata(ready.id, FileMetadata::Probe, &probe, None)
            .await,
        Ok(true)
    ));
    let stored = files.get(ready.id).await.ok().flatten();
    assert_eq!(stored.as_ref().and_then(|f| f.sha256.clone()), Some(sha()));
    assert_eq!(
        stored.and_then(|f| f.metadata),
        Some(json!({ "checksum": checksum, "media": probe }))
    );
    let gone = sample::available(episode).id;
    assert!(matches!(
        files
            .record_metadata(gone, FileMetadata::Probe, &probe, None)
            .await,
        Ok(false)
    ));
    assert_eq!(files.get(gone).await.ok().flatten(), None, "not created");
}

pub async fn an_episodes_files_come_in_pages_in_upload_order(w: &impl World) {
    let episode = w.episode().await;
    let other = w.episode().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let f = sample::file(episode);
        w.files().create(&f).await.unwrap_or_else(|e| panic!("{e}"));
        ids.push(f.id);
    }
    w.files()
        .create(&sample::file(other))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let two = PageSize::parse("2").unwrap_or(PageSize::DEFAULT);
    let first = w
        .files()
        .list(episode, two, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first.items.iter().map(|f| f.id).collect::<Vec<_>>(),
        ids[..2]
    );
    assert_eq!(first.next_after, Some(ids[1]));
    let rest = w
        .files()
        .list(episode, two, first.next_after)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rest.items.iter().map(|f| f.id).collect::<Vec<_>>(),
        ids[2..]
    );
    assert_eq!(rest.next_after, None);
    let all = w
        .files()
        .all_of(episode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.iter().map(|f| f.id).collect::<Vec<_>>(), ids);
    let none = w
        .files()
        .list(EpisodeId::new(), PageSize::DEFAULT, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.items.is_empty() && none.next_after.is_none());
}
