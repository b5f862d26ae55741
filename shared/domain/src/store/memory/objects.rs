//! Objects, as the bucket behaves for this system: keys to bytes, a pending tag until an
//! upload is confirmed, multipart uploads assembled from their parts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::poisoned;
use crate::file::{ContentType, Sha256};
use crate::store::StoreError;
use crate::store::object::{
    ByteChunks, ObjectInfo, ObjectParts, ObjectReader, ObjectTransfers, ObjectWriter, Presigned,
};

/// Bytes by key. Clones share the state. A presigned request is `memory://<method>/<key>`;
/// a test plays the client with [`InMemoryObjects::upload`] and [`InMemoryObjects::upload_part`].
#[derive(Debug, Clone, Default)]
pub struct InMemoryObjects(Arc<State>);

#[derive(Debug, Default)]
struct State {
    objects: Mutex<BTreeMap<String, Object>>,
    uploads: Mutex<BTreeMap<String, Upload>>,
    calls: AtomicUsize,
    /// The largest part sent by [`ObjectParts::send_part`].
    largest_part: AtomicUsize,
    /// Below this, a part but the last is refused when the upload completes (S3's 5 MiB;
    /// 0 stands for it, so the default is S3's).
    min_part: AtomicUsize,
    /// While set, every call fails as an outage would.
    down: std::sync::atomic::AtomicBool,
}

/// An open multipart upload (by its id): its key and its parts by number.
type Upload = (String, BTreeMap<u32, Vec<u8>>);

#[derive(Debug, Clone)]
struct Object {
    bytes: Vec<u8>,
    sha256: Option<Sha256>,
    pending: bool,
}

/// The chunks of an in-memory object (64 KiB each).
#[derive(Debug)]
pub struct MemoryBody(std::vec::IntoIter<Vec<u8>>);

impl ByteChunks for MemoryBody {
    type Chunk = Vec<u8>;

    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.next())
    }
}

impl InMemoryObjects {
    /// An upload the client made with a presigned PUT (tagged pending, like a real one).
    pub fn upload(&self, key: &str, bytes: Vec<u8>, sha256: Option<Sha256>) {
        if let Ok(mut o) = self.0.objects.lock() {
            o.insert(
                key.to_owned(),
                Object {
                    bytes,
                    sha256,
                    pending: true,
                },
            );
        }
    }

    /// A part the client uploaded to a multipart upload.
    pub fn upload_part(&self, upload_id: &str, part: u32, bytes: Vec<u8>) {
        if let Ok(mut u) = self.0.uploads.lock()
            && let Some((_, parts)) = u.get_mut(upload_id)
        {
            parts.insert(part, bytes);
        }
    }

    pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
        self.0
            .objects
            .lock()
            .ok()
            .and_then(|o| o.get(key).map(|x| x.bytes.clone()))
    }

    /// Whether the object still carries the pending tag.
    pub fn is_pending(&self, key: &str) -> Option<bool> {
        self.0
            .objects
            .lock()
            .ok()
            .and_then(|o| o.get(key).map(|x| x.pending))
    }

    /// Multipart uploads still open.
    pub fn open_uploads(&self) -> usize {
        self.0.uploads.lock().map(|u| u.len()).unwrap_or(0)
    }

    /// Makes every following call fail (`true`) or work again (`false`).
    pub fn set_down(&self, down: bool) {
        self.0.down.store(down, Ordering::Relaxed);
    }

    pub fn calls(&self) -> usize {
        self.0.calls.load(Ordering::Relaxed)
    }

    fn call(&self) -> Result<(), StoreError> {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        if self.0.down.load(Ordering::Relaxed) {
            return Err(StoreError::unavailable(std::io::Error::other(
                "object store unavailable",
            )));
        }
        Ok(())
    }

    fn objects(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Object>>, StoreError> {
        self.0.objects.lock().map_err(|_| poisoned())
    }
}

fn presigned(method: &str, key: &str) -> Presigned {
    Presigned {
        method: method.to_owned(),
        url: format!("memory://{method}/{key}"),
        headers: Vec::new(),
    }
}

impl ObjectReader for InMemoryObjects {
    type Body = MemoryBody;

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.call()?;
        Ok(self.objects()?.get(key).map(|o| ObjectInfo {
            size: o.bytes.len() as u64,
            sha256: o.sha256.clone(),
        }))
    }

    async fn open(&self, key: &str) -> Result<Option<(u64, MemoryBody)>, StoreError> {
        self.call()?;
        Ok(self.objects()?.get(key).map(|o| {
            let chunks: Vec<Vec<u8>> = o.bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
            (o.bytes.len() as u64, MemoryBody(chunks.into_iter()))
        }))
    }
}

impl ObjectWriter for InMemoryObjects {
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        _content_type: ContentType,
        sha256: &Sha256,
    ) -> Result<(), StoreError> {
        self.call()?;
        self.objects()?.insert(
            key.to_owned(),
            Object {
                bytes: body,
                sha256: Some(sha256.clone()),
                pending: false,
            },
        );
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.call()?;
        self.objects()?.remove(key);
        Ok(())
    }

    async fn mark_confirmed(&self, key: &str) -> Result<(), StoreError> {
        self.call()?;
        if let Some(o) = self.objects()?.get_mut(key) {
            o.pending = false;
        }
        Ok(())
    }
}

impl InMemoryObjects {
    /// The largest part this side has sent (what writing in parts holds in memory at most).
    pub fn largest_part(&self) -> usize {
        self.0.largest_part.load(Ordering::SeqCst)
    }

    /// Lets parts smaller than S3's 5 MiB complete an upload (tests of small parts).
    pub fn set_min_part_bytes(&self, bytes: usize) {
        self.0.min_part.store(bytes.max(1), Ordering::SeqCst);
    }

    fn min_part(&self) -> usize {
        match self.0.min_part.load(Ordering::SeqCst) {
            0 => crate::export::S3_MIN_PART_BYTES,
            n => n,
        }
    }
}

fn etag(bytes: &[u8]) -> String {
    format!(
        "\"{}-{}\"",
        bytes.len(),
        bytes.iter().map(|b| u64::from(*b)).sum::<u64>()
    )
}

impl InMemoryObjects {
    /// A new multipart upload of `key`; its id.
    fn open_upload(&self, key: &str) -> Result<String, StoreError> {
        self.call()?;
        let mut uploads = self.0.uploads.lock().map_err(|_| poisoned())?;
        let id = format!("upload-{}", uploads.len() + 1);
        uploads.insert(id.clone(), (key.to_owned(), BTreeMap::new()));
        Ok(id)
    }

    /// The upload is given up (nothing there is fine).
    fn drop_upload(&self, upload_id: &str) -> Result<(), StoreError> {
        self.call()?;
        self.0
            .uploads
            .lock()
            .map_err(|_| poisoned())?
            .remove(upload_id);
        Ok(())
    }
}

impl ObjectParts for InMemoryObjects {
    async fn begin(&self, key: &str, _content_type: &str) -> Result<String, StoreError> {
        self.open_upload(key)
    }

    async fn send_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Vec<u8>,
    ) -> Result<String, StoreError> {
        self.call()?;
        let mut uploads = self.0.uploads.lock().map_err(|_| poisoned())?;
        match uploads.get_mut(upload_id) {
            Some((k, parts)) if k == key && number >= 1 => {
                self.0.largest_part.fetch_max(body.len(), Ordering::SeqCst);
                let tag = etag(&body);
                parts.insert(number, body);
                Ok(tag)
            }
            _ => Err(StoreError::unavailable(std::io::Error::other(
                "no such upload",
            ))),
        }
    }

    async fn finish(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StoreError> {
        self.call()?;
        let mut uploads = self.0.uploads.lock().map_err(|_| poisoned())?;
        let refused = || StoreError::unavailable(std::io::Error::other("InvalidPart"));
        let Some((k, sent)) = uploads.get(upload_id) else {
            return Err(refused());
        };
        if k != key || parts.is_empty() || !parts.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(refused());
        }
        let mut bytes = Vec::new();
        let min = self.min_part();
        for (i, (number, tag)) in parts.iter().enumerate() {
            match sent.get(number) {
                // As S3: every part but the last at least 5 MiB (EntityTooSmall).
                Some(body) if i + 1 < parts.len() && body.len() < min => {
                    return Err(StoreError::unavailable(std::io::Error::other(
                        "EntityTooSmall",
                    )));
                }
                Some(body) if etag(body) == *tag => bytes.extend_from_slice(body),
                _ => return Err(refused()),
            }
        }
        self.objects()?.insert(
            key.to_owned(),
            Object {
                bytes,
                sha256: None,
                pending: false,
            },
        );
        uploads.remove(upload_id);
        Ok(())
    }

    async fn give_up(&self, _key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.drop_upload(upload_id)
    }
}

impl ObjectTransfers for InMemoryObjects {
    async fn presign_put(
        &self,
        key: &str,
        _content_type: ContentType,
        _size: u64,
        _sha256: Option<&Sha256>,
        _ttl: Duration,
    ) -> Result<Presigned, StoreError> {
        Ok(presigned("PUT", key))
    }

    async fn start_multipart(
        &self,
        key: &str,
        _content_type: ContentType,
    ) -> Result<String, StoreError> {
        self.open_upload(key)
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        _ttl: Duration,
    ) -> Result<Presigned, StoreError> {
        Ok(presigned(
            "PUT",
            &format!("{key}?uploadId={upload_id}&partNumber={part}"),
        ))
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str) -> Result<bool, StoreError> {
        self.call()?;
        let mut uploads = self.0.uploads.lock().map_err(|_| poisoned())?;
        let Some((upload_key, parts)) = uploads.get(upload_id) else {
            return Ok(false);
        };
        let mut objects = self.objects()?;
        if upload_key != key || parts.is_empty() || objects.contains_key(key) {
            return Ok(false);
        }
        let bytes = parts.values().flatten().copied().collect();
        objects.insert(
            key.to_owned(),
            Object {
                bytes,
                sha256: None,
                pending: true,
            },
        );
        uploads.remove(upload_id);
        Ok(true)
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.drop_upload(upload_id)
    }

    async fn presign_get(
        &self,
        key: &str,
        _content_disposition: &str,
        _ttl: Duration,
    ) -> Result<Presigned, StoreError> {
        Ok(presigned("GET", key))
    }
}
