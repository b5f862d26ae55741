//! The bytes of episode files (S3 behind the adapter): presigned uploads and downloads, the
//! checks that an upload really happened, objects a job makes, and clean-up.

use std::future::Future;
use std::time::Duration;

use super::StoreError;
use crate::file::{ContentType, Sha256};

/// A request the client makes itself: method, URL and the headers it must send as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// What the store holds under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// The full-object SHA-256 when the upload carried one.
    pub sha256: Option<Sha256>,
}

/// An object's bytes, chunk by chunk.
pub trait ByteChunks {
    type Chunk: AsRef<[u8]> + Send;

    /// The next chunk; `None` at the end.
    fn next_chunk(
        &mut self,
    ) -> impl Future<Output = Result<Option<Self::Chunk>, StoreError>> + Send;
}

/// Reading objects. A missing object is `None`, never an error (and a denial is an error,
/// never "missing").
pub trait ObjectReader {
    type Body: ByteChunks + Send;

    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectInfo>, StoreError>> + Send;

    /// The object's size and bytes.
    fn open(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(u64, Self::Body)>, StoreError>> + Send;
}

/// Writing objects made here, and cleaning up.
pub trait ObjectWriter {
    /// Writes an object (a thumbnail), its SHA-256 checked by the store.
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: ContentType,
        sha256: &Sha256,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the object (nothing there is fine).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The upload was checked: the object stops carrying the pending tag that the bucket's
    /// lifecycle rule expires.
    fn mark_confirmed(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Objects written here in parts, in constant memory (an export's files): a multipart
/// upload whose parts this side sends. Parts are numbered from 1; all but the last are at
/// least 5 MiB.
pub trait ObjectParts {
    /// Starts the upload of `key` (an object there is replaced when it completes); its id.
    fn begin(
        &self,
        key: &str,
        content_type: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Sends part `number`; its ETag.
    fn send_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Completes the upload from the parts sent (number, ETag), in order.
    fn finish(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives the upload up (nothing there is fine).
    fn give_up(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Uploads and downloads the client makes itself, by presigned request.
pub trait ObjectTransfers {
    /// A PUT of exactly `size` bytes of `content_type` that cannot overwrite an object.
    fn presign_put(
        &self,
        key: &str,
        content_type: ContentType,
        size: u64,
        sha256: Option<&Sha256>,
        ttl: Duration,
    ) -> impl Future<Output = Result<Presigned, StoreError>> + Send;

    /// Starts a multipart upload; its id.
    fn start_multipart(
        &self,
        key: &str,
        content_type: ContentType,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        ttl: Duration,
    ) -> impl Future<Output = Result<Presigned, StoreError>> + Send;

    /// Completes a multipart upload from the parts uploaded; false when there is no such
    /// upload (any more) or no part was uploaded.
    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn abort_multipart(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A short-lived GET that saves the file under `content_disposition`'s name.
    fn presign_get(
        &self,
        key: &str,
        content_disposition: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Presigned, StoreError>> + Send;
}
