//! The input stream: a reader that counts its bytes and keeps the first I/O error it met, so
//! that an error which a parser wrapped or swallowed is still reported as a broken stream, and
//! the sniffing of the first bytes.

use std::io::{self, Cursor, ErrorKind, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::MediaError;

/// How the message of an [`MediaError::Unreadable`] for a file that ends too soon begins.
pub(crate) const TRUNCATED: &str = "the file is truncated";

/// How many bytes are sniffed at the start of the input.
pub(crate) const HEAD_LEN: usize = 16;

/// What a [`Tracked`] reader saw, shared with the caller while a parser owns the reader.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    bytes: AtomicU64,
    error: Mutex<Option<io::Error>>,
}

impl Tracker {
    /// The bytes read so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The first I/O error of the reader (other than `Interrupted`), taken out.
    pub(crate) fn take_error(&self) -> Option<io::Error> {
        self.error.lock().ok().and_then(|mut slot| slot.take())
    }

    fn record(&self, e: &io::Error) -> io::Error {
        let copy = io::Error::new(e.kind(), e.to_string());
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(io::Error::new(e.kind(), e.to_string()));
        }
        copy
    }

    /// The error of a parse that failed with `error`: the stream's own I/O error if it had one;
    /// a broken stream if the parse found the file truncated and the stream ended before `size`;
    /// else `error`. (A parse that gives up on its own, say on an unsupported codec, has not read
    /// the stream to its end: that is no broken stream.)
    pub(crate) fn classify(&self, size: Option<u64>, error: MediaError) -> MediaError {
        if let Some(e) = self.take_error() {
            return MediaError::Read(e);
        }
        match &error {
            MediaError::Unreadable(why) if why.starts_with(TRUNCATED) => {
                self.short_of(size).unwrap_or(error)
            }
            _ => error,
        }
    }

    /// A broken-stream error if the reader ended before `size` bytes (call at its end).
    pub(crate) fn short_of(&self, size: Option<u64>) -> Option<MediaError> {
        let read = self.bytes();
        match size {
            Some(size) if read < size => Some(ended_early(read, size)),
            _ => None,
        }
    }
}

/// The error of a stream that ended after `read` of its `size` bytes.
pub(crate) fn ended_early(read: u64, size: u64) -> MediaError {
    MediaError::Read(io::Error::new(
        ErrorKind::UnexpectedEof,
        format!("the input ended after {read} of its {size} bytes"),
    ))
}

/// A reader that counts its bytes into a [`Tracker`] and records its first error there.
#[derive(Debug)]
pub(crate) struct Tracked<R> {
    inner: R,
    tracker: Arc<Tracker>,
}

impl<R: Read> Tracked<R> {
    pub(crate) fn new(inner: R) -> (Self, Arc<Tracker>) {
        let tracker = Arc::new(Tracker::default());
        (
            Self {
                inner,
                tracker: Arc::clone(&tracker),
            },
            tracker,
        )
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.tracker.bytes.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
            Err(e) => Err(self.tracker.record(&e)),
        }
    }
}

/// The reader with its first bytes read out to sniff them, and put back in front.
pub(crate) type Sniffed<R> = io::Chain<Cursor<Vec<u8>>, R>;

/// Reads up to [`HEAD_LEN`] bytes (fewer only at the end of the stream) and returns them with
/// the whole stream, those bytes included.
pub(crate) fn sniff<R: Read>(mut reader: R) -> Result<(Vec<u8>, Sniffed<R>), MediaError> {
    let mut head = vec![0; HEAD_LEN];
    let mut filled = 0;
    while filled < HEAD_LEN {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(MediaError::Read(e)),
        }
    }
    head.truncate(filled);
    let stream = Cursor::new(head.clone()).chain(reader);
    Ok((head, stream))
}

/// Whether the head is an ISO base media file (`ftyp` box first).
pub(crate) fn is_ftyp(head: &[u8]) -> bool {
    head.get(4..8) == Some(b"ftyp".as_slice())
}

/// Whether the head is an EBML (Matroska / WebM) file.
pub(crate) fn is_ebml(head: &[u8]) -> bool {
    head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
}

/// Maps an I/O error of a parser reading the stream directly: the end of the stream is a
/// truncated file (or a broken stream, if it ended before `size`), anything else a broken stream.
pub(crate) fn io_error(e: io::Error, read: u64, size: Option<u64>, what: &str) -> MediaError {
    if e.kind() == ErrorKind::UnexpectedEof {
        match size {
            Some(size) if read < size => ended_early(read, size),
            _ => MediaError::Unreadable(format!("{TRUNCATED} ({what})")),
        }
    } else {
        MediaError::Read(e)
    }
}

/// An input opened for reading: its first bytes (at most `HEAD_LEN`, never none), the stream
/// from the start again, the tracker of what was read, and the caller's MIME type and size.
pub(crate) struct Opened<R> {
    pub head: Vec<u8>,
    pub stream: Sniffed<Tracked<R>>,
    pub tracker: std::sync::Arc<Tracker>,
    pub mime: String,
    pub size: Option<u64>,
}

/// Opens an input: reads its head; an empty input is unreadable (or the stream's error when
/// it ended before its announced size).
pub(crate) fn open<R: Read>(input: crate::Input<R>) -> Result<Opened<R>, MediaError> {
    let crate::Input { reader, mime, size } = input;
    let (tracked, tracker) = Tracked::new(reader);
    let (head, stream) = sniff(tracked)?;
    if head.is_empty() {
        return Err(tracker.classify(
            size,
            MediaError::Unreadable(format!("{TRUNCATED}: it is empty")),
        ));
    }
    Ok(Opened {
        head,
        stream,
        tracker,
        mime,
        size,
    })
}
