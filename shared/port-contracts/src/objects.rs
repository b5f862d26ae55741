//! The objects port: missing is `None`, a put is read back whole, a multipart upload
//! completes from its parts once.

use domain::store::object::{ByteChunks, ObjectParts, ObjectReader, ObjectTransfers, ObjectWriter};
use domain::{ContentType, EpisodeId, FileId, Sha256};

use crate::World;

fn key() -> String {
    domain::file::object_key(EpisodeId::new(), FileId::new())
}

fn png() -> ContentType {
    ContentType::parse("image/png").unwrap_or_else(|e| panic!("{e}"))
}

async fn read(w: &impl World, key: &str) -> Option<Vec<u8>> {
    let (size, mut body) = w
        .objects()
        .open(key)
        .await
        .unwrap_or_else(|e| panic!("{e}"))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next_chunk().await.unwrap_or_else(|e| panic!("{e}")) {
        bytes.extend_from_slice(chunk.as_ref());
    }
    assert_eq!(size, bytes.len() as u64);
    Some(bytes)
}

pub async fn a_missing_object_is_none_and_deleting_it_is_fine(w: &impl World) {
    let key = key();
    assert_eq!(w.objects().head(&key).await.ok(), Some(None));
    assert_eq!(read(w, &key).await, None);
    assert!(w.objects().delete(&key).await.is_ok());
}

pub async fn an_object_put_is_read_back_whole(w: &impl World) {
    let key = key();
    let bytes = b"hello world".to_vec();
    let sha = Sha256::parse("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
        .unwrap_or_else(|e| panic!("{e}"));
    w.objects()
        .put(&key, bytes.clone(), png(), &sha)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let info = w.objects().head(&key).await.ok().flatten();
    assert_eq!(info.as_ref().map(|i| i.size), Some(11));
    assert_eq!(info.and_then(|i| i.sha256), Some(sha));
    assert_eq!(read(w, &key).await, Some(bytes));
    assert!(w.objects().mark_confirmed(&key).await.is_ok());
    w.objects()
        .delete(&key)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.objects().head(&key).await.ok(), Some(None));
}

pub async fn a_multipart_upload_completes_from_its_parts_once(w: &impl World) {
    let objects = w.objects();
    let key = key();
    let empty = objects
        .start_multipart(&key, png())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(objects.complete_multipart(&key, &empty).await, Ok(false)),
        "no parts"
    );
    objects
        .abort_multipart(&key, &empty)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let upload = objects
        .start_multipart(&key, png())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.upload_part(&key, &upload, 1, b"all of it".to_vec()).await;
    assert!(matches!(
        objects.complete_multipart(&key, &upload).await,
        Ok(true)
    ));
    assert_eq!(read(w, &key).await, Some(b"all of it".to_vec()));
    // Completing again: that upload is gone.
    assert!(matches!(
        objects.complete_multipart(&key, &upload).await,
        Ok(false)
    ));
    // Never over an object already there.
    let second = objects
        .start_multipart(&key, png())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    w.upload_part(&key, &second, 1, b"other bytes".to_vec())
        .await;
    assert!(matches!(
        objects.complete_multipart(&key, &second).await,
        Ok(false)
    ));
    assert_eq!(read(w, &key).await, Some(b"all of it".to_vec()));
    objects
        .abort_multipart(&key, &second)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Parts sent from here (an export's files): the object is the parts in order, a last part
/// of any size (an empty one too) completes it, and an upload given up leaves nothing.
pub async fn parts_sent_from_here_make_the_object_in_order(w: &impl World) {
    let objects = w.objects();
    let ok = |r: Result<String, domain::store::StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
    let key = format!("exports/{}/contract.jsonl", EpisodeId::new());
    let upload = ok(objects.begin(&key, "application/x-ndjson").await);
    // S3's smallest part but the last: 5 MiB.
    let first = vec![b'a'; 5 * 1024 * 1024];
    let one = ok(objects.send_part(&key, &upload, 1, first.clone()).await);
    let two = ok(objects
        .send_part(&key, &upload, 2, b"the end".to_vec())
        .await);
    objects
        .finish(&key, &upload, &[(1, one), (2, two)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut expected = first;
    expected.extend_from_slice(b"the end");
    assert_eq!(read(w, &key).await, Some(expected));

    let empty_key = format!("exports/{}/empty.jsonl", EpisodeId::new());
    let upload = ok(objects.begin(&empty_key, "application/x-ndjson").await);
    let only = ok(objects.send_part(&empty_key, &upload, 1, Vec::new()).await);
    objects
        .finish(&empty_key, &upload, &[(1, only)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        read(w, &empty_key).await,
        Some(Vec::new()),
        "an empty export"
    );

    let dropped = format!("exports/{}/dropped.jsonl", EpisodeId::new());
    let upload = ok(objects.begin(&dropped, "application/x-ndjson").await);
    ok(objects
        .send_part(&dropped, &upload, 1, b"half".to_vec())
        .await);
    objects
        .give_up(&dropped, &upload)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(w, &dropped).await, None);
}
