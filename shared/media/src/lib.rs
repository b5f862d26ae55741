//! What the job worker measures in an episode's media file, streaming, in memory that does not
//! grow with the file (but for the loudness meter's 0.3 MB an hour, see below).
//!
//! Three entry points, each taking an [`Input`] (a blocking, non-seekable [`std::io::Read`], the
//! MIME type the uploader declared and the size in bytes when known) and each run by the worker on
//! a blocking thread (`spawn_blocking`):
//!
//! * [`loudness::measure`]: integrated loudness, loudness range, sample peak and true peak
//!   (ITU-R BS.1770-4 / EBU R128 through the `ebur128` crate), and a verdict against a
//!   [`loudness::Target`] (podcast −16 LUFS, EBU R128 −23 LUFS).
//! * [`waveform::render`]: min/max peaks in BBC audiowaveform's JSON format, version 2.
//! * [`probe::probe`]: the container, its duration and overall bit rate, and its audio and video
//!   tracks (codec, sample rate, channels, size, frame rate).
//!
//! # Streaming and memory
//!
//! Nothing holds the whole file or all of its samples. Audio is decoded packet by packet with
//! symphonia (the first audio track, or the container's default one when it is audio) into one
//! reusable interleaved buffer; the waveform keeps only its output (capped at
//! [`waveform::MAX_POINTS`]); the loudness meter keeps its filter state and 88 bytes per second
//! of audio of block history (0.3 MB an hour; see [`loudness`] for why not its constant-memory
//! histogram mode). An hour-long 700 MB WAV file takes a few MB.
//!
//! The exception is the MP4 family (M4A, MP4, QuickTime): their `moov` box, which indexes the
//! samples, often comes after the `mdat` box holding them, and symphonia's MP4 reader cannot get
//! there without seeking. To *decode* such files (loudness, waveform) the stream is first spooled
//! to an anonymous temporary file (`tempfile::tempfile()`, in `TMPDIR`, which is `/tmp` on
//! Lambda), capped at [`MAX_SPOOL_BYTES`], and decoded from there. *Probing* an MP4 never spools:
//! the top-level boxes are walked from the stream, `ftyp` and `moov` (capped at 64 MiB) are kept
//! in memory and everything else (`mdat`) is read and discarded; the `moov` is then parsed by
//! this crate's own bounds-checked box parser (`probe::mp4`), which reads QuickTime sound
//! descriptions (versions 1 and 2) and sample entries the `mp4` crate does not know, and never
//! panics or allocates on the word of a size field. WebM / Matroska are probed by a minimal EBML
//! walker that stops at the first Cluster. The other audio containers (WAV, MP3, FLAC, Ogg, ADTS
//! AAC) are probed with symphonia; when the container does not state its length (MP3 without a
//! Xing/Info header, ADTS), the packets are demuxed (not decoded) to their end to count it.
//!
//! # Errors
//!
//! [`MediaError::Unreadable`]: the bytes are not a file this crate can read, a retry cannot
//! help. [`MediaError::Read`]: the stream broke (any I/O error of the reader other than the end
//! of the stream, or a stream that ends before the `size` the caller announced), a retry may
//! help. [`MediaError::TooLarge`]: a limit of this crate was reached.
//!
//! Opus audio (in WebM or Ogg) can be probed but not decoded: symphonia 0.5 has no Opus
//! decoder, so [`loudness::measure`] and [`waveform::render`] find it
//! [`MediaError::Unreadable`] (an unsupported codec).
//!
//! Decoders come from symphonia, which may panic on some malformed input; the release profile
//! aborts on panic, so the worker should treat a crashed invocation of a file as unreadable after
//! its retries.
//!
//! # Accuracy (measured by this crate's tests, on signals generated in the tests)
//!
//! Loudness: the EBU Tech 3341 minimum-requirements signals 1–5 read within 0.03 LU of −23 /
//! −33 LUFS (−22.99, −32.99, −23.01, −23.01, −22.98; the tolerance is ±0.1 LU), Tech 3342 LRA
//! cases 1–2 read 10.00 and 5.00 LU (±1 LU), the Tech 3341 true-peak signals 15–19 read −6.02,
//! −6.05, −6.01, −6.02 and +2.95 dBTP (−6 / +3 dBTP, +0.2/−0.4 dB).
//! The figures per test are in `tests/loudness.rs`.
//!
//! Waveform: the arithmetic of audiowaveform (16-bit samples; the mono mix is the integer mean of
//! the channels, truncated; 8-bit points are the 16-bit ones divided by 256, truncated; the last
//! partial pixel is kept).

use std::io::Read;

mod decode;
pub mod loudness;
pub mod probe;
mod stream;
pub mod waveform;

/// The largest MP4-family file [`loudness::measure`] and [`waveform::render`] spool to a
/// temporary file to decode it (2 GiB).
pub const MAX_SPOOL_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// What the caller knows of the input.
#[derive(Debug)]
pub struct Input<R> {
    /// The bytes, read once, from the start, never seeked.
    pub reader: R,
    /// The declared MIME type, e.g. `audio/wav`, `audio/x-wav`, `audio/mpeg`, `audio/flac`,
    /// `audio/aac`, `audio/mp4`, `audio/ogg`, `video/mp4`, `video/quicktime`, `video/webm`
    /// (parameters such as `; codecs=...` are ignored). The content is also sniffed, so a wrong
    /// MIME type of an MP4 or WebM file does no harm.
    pub mime: String,
    /// The size in bytes, if known. A stream that ends before it is a broken stream
    /// ([`MediaError::Read`]).
    pub size: Option<u64>,
}

impl<R: Read + Send + Sync + 'static> Input<R> {
    /// An input of this MIME type and size.
    pub fn new(reader: R, mime: impl Into<String>, size: Option<u64>) -> Self {
        Self {
            reader,
            mime: mime.into(),
            size,
        }
    }
}

/// Why a file could not be measured.
#[derive(thiserror::Error, Debug)]
pub enum MediaError {
    /// The bytes are not a readable file of this kind (corrupt, truncated, unsupported codec, no
    /// audio track, ...): retrying cannot help.
    #[error("unreadable media: {0}")]
    Unreadable(String),
    /// Reading the input failed (the stream broke, or ended before its announced size): a retry
    /// may succeed.
    #[error("reading the input failed: {0}")]
    Read(std::io::Error),
    /// Too large for a limit of this crate (spool size, `moov` size, waveform length, ...).
    #[error("too large: {0}")]
    TooLarge(String),
}

/// The MIME type without parameters, trimmed and in lower case.
pub(crate) fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether this MIME type is one of the ISO base media file formats (MP4, M4A, QuickTime, 3GP),
/// whose index (`moov`) may follow the media data, so that decoding them needs a seekable copy.
pub fn is_mp4_family(mime: &str) -> bool {
    matches!(
        essence(mime).as_str(),
        "audio/mp4"
            | "audio/m4a"
            | "audio/x-m4a"
            | "audio/x-m4b"
            | "audio/mp4a-latm"
            | "video/mp4"
            | "video/x-m4v"
            | "video/quicktime"
            | "audio/3gpp"
            | "audio/3gpp2"
            | "video/3gpp"
            | "video/3gpp2"
            | "application/mp4"
    )
}
