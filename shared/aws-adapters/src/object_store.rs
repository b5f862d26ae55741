//! Episode files' bytes in S3: presigned uploads (single PUT or multipart) and downloads, the
//! checks that an upload really happened, and clean-up.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{ChecksumMode, CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::base64;
use domain::store::StoreError;
use domain::store::object::{
    ByteChunks, ObjectInfo, ObjectParts, ObjectReader, ObjectTransfers, ObjectWriter, Presigned,
};
use domain::{ContentType, Sha256};

#[derive(Debug, Clone)]
pub struct ObjectStore {
    client: Client,
    /// The same client without the call counter: presigning runs the SDK's request pipeline up
    /// to signing (interceptors included) but sends nothing, so it must not count as a call.
    presigner: Client,
    bucket: String,
}

fn presigning(ttl: Duration) -> Result<PresigningConfig, StoreError> {
    PresigningConfig::expires_in(ttl).map_err(StoreError::unavailable)
}

fn presigned(req: &aws_sdk_s3::presigning::PresignedRequest) -> Presigned {
    Presigned {
        method: req.method().to_owned(),
        url: req.uri().to_owned(),
        headers: req
            .headers()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

fn not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    matches!(e.code(), Some("NotFound" | "NoSuchKey" | "NoSuchUpload"))
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
}

/// Reading a key that does not exist: 404 to a role that may list the bucket, 403 to one that
/// may not (S3 then hides whether the key exists). The template grants `s3:ListBucket` on the
/// objects' prefix, so a missing object is a 404 and a 403 is what it says: access denied (a
/// missing grant, an explicit deny, a bad signature). That is never taken as "missing" — the
/// files worker would delete a real upload on it — but reported as unavailable, retried, and
/// in the end parked and alarmed, with a log line that names the grant to check.
fn missing_object<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>, key: &str) -> bool {
    let denied = matches!(e.code(), Some("AccessDenied" | "Forbidden"))
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 403);
    if denied {
        tracing::error!(
            key,
            "S3 denied reading an object (does the role have s3:ListBucket on the prefix? a missing object is a 403 without it)"
        );
    }
    not_found(e)
}

/// The tag an object carries from its upload until the upload is confirmed; the bucket's
/// lifecycle rule expires objects still carrying it, so bytes of an upload never completed
/// go even when the delayed check never ran.
pub const PENDING_TAG: (&str, &str) = ("upload", "pending");

fn precondition_failed<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    e.code() == Some("PreconditionFailed")
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
}

fn pending_tagging() -> String {
    format!("{}={}", PENDING_TAG.0, PENDING_TAG.1)
}

impl ObjectStore {
    /// A store whose S3 calls `calls` counts (presigning makes none).
    pub fn new(
        sdk: &aws_config::SdkConfig,
        bucket: String,
        calls: &impl crate::CallObserver,
    ) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            // Presigned requests must not carry a checksum of an empty body the SDK computed.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        Self {
            presigner: Client::from_conf(conf.clone().build()),
            client: Client::from_conf(conf.interceptor(calls.clone()).build()),
            bucket,
        }
    }
}

impl ObjectReader for ObjectStore {
    type Body = ObjectBody;

    /// The object under `key`, if there is one.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                sha256: out
                    .checksum_sha256()
                    .and_then(|b| base64::decode(b).ok())
                    .and_then(|d| Sha256::from_bytes(&d)),
            })),
            Err(e) if missing_object(&e, key) => Ok(None),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    /// The object's bytes as a stream, and its size; None when there is no such object.
    async fn open(&self, key: &str) -> Result<Option<(u64, ObjectBody)>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let size = out
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0);
                Ok(Some((size, ObjectBody(out.body))))
            }
            Err(e) if missing_object(&e, key) => Ok(None),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}

impl ObjectWriter for ObjectStore {
    /// Writes an object made here (a thumbnail), with its SHA-256 checked by S3.
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: ContentType,
        sha256: &Sha256,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type.as_str())
            .checksum_sha256(base64::encode(sha256.bytes()))
            .body(body.into())
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }

    /// Deletes the object (nothing there is fine).
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }

    /// The upload under `key` is confirmed: its object loses the pending tag, so the
    /// lifecycle rule for abandoned uploads leaves it alone. Idempotent.
    async fn mark_confirmed(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }
}

impl ObjectTransfers for ObjectStore {
    /// A PUT of exactly `size` bytes of `content_type`, with S3 checking the SHA-256 if given.
    /// It cannot overwrite: `If-None-Match: *` is signed in, so once an object is under the
    /// key (an upload that became available) the URL answers 412. The object is tagged
    /// pending until the upload is confirmed ([`ObjectStore::mark_confirmed`]).
    async fn presign_put(
        &self,
        key: &str,
        content_type: ContentType,
        size: u64,
        sha256: Option<&Sha256>,
        ttl: Duration,
    ) -> Result<Presigned, StoreError> {
        let req = self
            .presigner
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type.as_str())
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .set_checksum_sha256(sha256.map(|s| base64::encode(s.bytes())))
            .if_none_match("*")
            .tagging(pending_tagging())
            .presigned(presigning(ttl)?)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(presigned(&req))
    }

    /// Starts a multipart upload; its id.
    async fn start_multipart(
        &self,
        key: &str,
        content_type: ContentType,
    ) -> Result<String, StoreError> {
        self.create_upload(key, content_type.as_str(), Some(pending_tagging()))
            .await
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        ttl: Duration,
    ) -> Result<Presigned, StoreError> {
        let req = self
            .presigner
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(i32::try_from(part).unwrap_or(i32::MAX))
            .presigned(presigning(ttl)?)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(presigned(&req))
    }

    /// Completes a multipart upload from the parts S3 has; false when the upload is unknown
    /// (completed before, aborted) or has no parts yet.
    async fn complete_multipart(&self, key: &str, upload_id: &str) -> Result<bool, StoreError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = match self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if not_found(&e) => return Ok(false),
                Err(e) => return Err(StoreError::unavailable(e)),
            };
            for p in out.parts() {
                parts.push(
                    CompletedPart::builder()
                        .set_part_number(p.part_number())
                        .set_e_tag(p.e_tag().map(str::to_owned))
                        .build(),
                );
            }
            if out.is_truncated() == Some(true) {
                marker = out.next_part_number_marker().map(str::to_owned);
            } else {
                break;
            }
        }
        if parts.is_empty() {
            return Ok(false);
        }
        parts.sort_by_key(|p| p.part_number());
        match self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            // Never over an object already there.
            .if_none_match("*")
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) || precondition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    /// A short-lived GET that saves the file under its own name.
    async fn presign_get(
        &self,
        key: &str,
        content_disposition: &str,
        ttl: Duration,
    ) -> Result<Presigned, StoreError> {
        let req = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(content_disposition)
            .presigned(presigning(ttl)?)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(presigned(&req))
    }
}

impl ObjectStore {
    /// A new multipart upload of `key`; its id. A client's upload is tagged pending (the
    /// lifecycle rule expires it unless confirmed); one made here is not.
    async fn create_upload(
        &self,
        key: &str,
        content_type: &str,
        tagging: Option<String>,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_tagging(tagging)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::unavailable(std::io::Error::other("no upload id")))
    }
}

impl ObjectParts for ObjectStore {
    async fn begin(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        self.create_upload(key, content_type, None).await
    }

    async fn send_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Vec<u8>,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(i32::try_from(number).unwrap_or(i32::MAX))
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.e_tag()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::unavailable(std::io::Error::other("no ETag for a part")))
    }

    async fn finish(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), StoreError> {
        let parts = parts
            .iter()
            .map(|(number, tag)| {
                CompletedPart::builder()
                    .part_number(i32::try_from(*number).unwrap_or(i32::MAX))
                    .e_tag(tag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn give_up(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.abort_multipart(key, upload_id).await
    }
}

/// An object's bytes as S3 streams them.
#[derive(Debug)]
pub struct ObjectBody(aws_sdk_s3::primitives::ByteStream);

impl ByteChunks for ObjectBody {
    type Chunk = bytes::Bytes;

    async fn next_chunk(&mut self) -> Result<Option<Self::Chunk>, StoreError> {
        self.0.try_next().await.map_err(StoreError::unavailable)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::head_object::HeadObjectError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// What the SDK hands back for a HeadObject that S3 answered with `status` (HEAD answers
    /// carry no body, so no error code unless the SDK derives one).
    fn answered(status: u16, code: Option<&str>) -> SdkError<HeadObjectError, HttpResponse> {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::service_error(HeadObjectError::generic(meta.build()), raw)
    }

    #[test]
    fn only_a_404_is_a_missing_object() {
        assert!(missing_object(&answered(404, Some("NotFound")), "k"));
        assert!(missing_object(&answered(404, None), "k"));
        // A denial is not taken as "missing" (acting on it could delete a real upload).
        assert!(!missing_object(&answered(403, None), "k"));
        assert!(!missing_object(&answered(403, Some("AccessDenied")), "k"));
        // An outage is not a missing object: it is retried.
        assert!(!missing_object(&answered(500, None), "k"));
        assert!(!missing_object(&answered(503, Some("SlowDown")), "k"));
    }

    #[test]
    fn a_refused_overwrite_is_told_from_other_failures() {
        assert!(precondition_failed(&answered(
            412,
            Some("PreconditionFailed")
        )));
        assert!(precondition_failed(&answered(412, None)));
        assert!(!precondition_failed(&answered(
            409,
            Some("ConditionalRequestConflict")
        )));
        assert!(!precondition_failed(&answered(500, None)));
    }
}
