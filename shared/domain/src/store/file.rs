//! The files aggregate's ports: an episode's file records (the bytes are behind
//! [`super::object`]). A file is created pending, becomes available once its object is
//! checked, and is deleted with its event.

use std::future::Future;

use serde_json::Value;

use super::{Page, PageSize, StoreError};
use crate::event::DomainEvent;
use crate::file::{EpisodeFile, FileStatus, Sha256};
use crate::ids::{EpisodeId, FileId};

/// A page of an episode's files.
pub type FilePage = Page<EpisodeFile, FileId>;

/// Why a file write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum FileWriteError {
    #[error("episode not found")]
    NoEpisode,
    #[error("file not found")]
    NoFile,
    /// The file is not in the state the write needs (e.g. already available).
    #[error("the file is {}", .0.as_str())]
    State(FileStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a job recorded about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMetadata {
    Checksum,
    Probe,
    Loudness,
    /// The waveform file made of it.
    Waveform,
}

impl FileMetadata {
    pub const ALL: [Self; 4] = [Self::Checksum, Self::Probe, Self::Loudness, Self::Waveform];

    /// The attribute it is stored under.
    pub fn attribute(self) -> &'static str {
        match self {
            Self::Checksum => "meta_checksum",
            Self::Probe => "meta_probe",
            Self::Loudness => "meta_loudness",
            Self::Waveform => "meta_waveform",
        }
    }

    /// Its key in the file's `metadata` object.
    pub fn key(self) -> &'static str {
        match self {
            Self::Checksum => "checksum",
            Self::Probe => "media",
            Self::Loudness => "loudness",
            Self::Waveform => "waveform",
        }
    }
}

pub trait FileReader {
    fn get(
        &self,
        id: FileId,
    ) -> impl Future<Output = Result<Option<EpisodeFile>, StoreError>> + Send;

    /// An episode's files, oldest first, a page at a time.
    fn list(
        &self,
        episode: EpisodeId,
        limit: PageSize,
        after: Option<FileId>,
    ) -> impl Future<Output = Result<FilePage, StoreError>> + Send;

    /// Every file of an episode (for deleting them with it).
    fn all_of(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<Vec<EpisodeFile>, StoreError>> + Send
    where
        Self: Sync,
    {
        async move {
            let mut files = Vec::new();
            let mut after = None;
            loop {
                let page = self.list(episode, PageSize::LARGEST, after).await?;
                files.extend(page.items);
                match page.next_after {
                    Some(a) => after = Some(a),
                    None => return Ok(files),
                }
            }
        }
    }
}

/// File record writes; each one that others must hear of is written with its event.
pub trait FileWriter {
    /// Records a pending file of an episode that exists (checked in the same write).
    fn create(&self, file: &EpisodeFile)
    -> impl Future<Output = Result<(), FileWriteError>> + Send;

    /// Pending → available ([`EpisodeFile::made_available`]), with its `file.uploaded` event.
    fn make_available(
        &self,
        file: &EpisodeFile,
        sha256: Option<&Sha256>,
        event: &DomainEvent,
    ) -> impl Future<Output = Result<(), FileWriteError>> + Send;

    /// Writes an event about an available file (a download), if it still is available.
    fn record(
        &self,
        file: &EpisodeFile,
        event: &DomainEvent,
    ) -> impl Future<Output = Result<(), FileWriteError>> + Send;

    /// Removes a file's record, with its `file.deleted` event.
    fn delete(
        &self,
        file: &EpisodeFile,
        event: &DomainEvent,
    ) -> impl Future<Output = Result<(), FileWriteError>> + Send;

    /// Records a file that is available from the start (made by a job), with its event.
    /// `State` when a file with its id is already there.
    fn create_available(
        &self,
        file: &EpisodeFile,
        event: &DomainEvent,
    ) -> impl Future<Output = Result<(), FileWriteError>> + Send;

    /// Removes a pending record (an upload abandoned or withdrawn); no event, nothing was
    /// ever there. False when it is not pending (any more).
    fn delete_pending(&self, id: FileId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records what a job found about a file and, for the checksum, the file's SHA-256.
    /// False when the file is gone.
    fn record_metadata(
        &self,
        id: FileId,
        what: FileMetadata,
        value: &Value,
        sha256: Option<&Sha256>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
