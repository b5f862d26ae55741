//! Decoding the first audio track packet by packet, for the loudness meter and the waveform.
//!
//! The stream is decoded as it is read, except for the MP4 family, which is spooled to a
//! temporary file first (see the crate documentation).

use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use symphonia::core::audio::{AudioBufferRef, SignalSpec};
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader, Track};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::stream::{Opened, TRUNCATED, Tracker, ended_early, is_ftyp, open};
use crate::{Input, MediaError, essence, is_mp4_family};

/// Damaged packets in a row after which the rest of the file is given up.
const MAX_DEMUX_ERRORS_IN_A_ROW: u32 = 32;

/// What receives the decoded audio.
pub(crate) trait Sink {
    /// Called once, before the first buffer, with its signal specification and the track's
    /// length in frames if the container states it.
    fn begin(&mut self, spec: &SignalSpec, n_frames: Option<u64>) -> Result<(), MediaError>;

    /// Called for every decoded buffer (of the same specification as the first one).
    fn write(&mut self, buf: AudioBufferRef<'_>) -> Result<(), MediaError>;
}

/// What the decoding went through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decoded {
    pub sample_rate: u32,
    pub channels: u32,
    /// The frames decoded.
    pub frames: u64,
    /// The packets that could not be decoded and were skipped.
    pub skipped_packets: u64,
}

/// A symphonia hint from the declared MIME type.
pub(crate) fn hint(mime: &str) -> Hint {
    let mime = essence(mime);
    let mut hint = Hint::new();
    let extension = match mime.as_str() {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Some("wav"),
        "audio/mpeg" | "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg-3" => Some("mp3"),
        "audio/flac" | "audio/x-flac" => Some("flac"),
        "audio/aac" | "audio/aacp" | "audio/x-aac" => Some("aac"),
        "audio/ogg" | "audio/opus" | "audio/vorbis" | "application/ogg" => Some("ogg"),
        "video/webm" | "audio/webm" => Some("webm"),
        "video/x-matroska" | "audio/x-matroska" => Some("mkv"),
        m if is_mp4_family(m) => Some("mp4"),
        _ => None,
    };
    if let Some(extension) = extension {
        hint.with_extension(extension);
    }
    if !mime.is_empty() {
        hint.mime_type(&mime);
    }
    hint
}

/// The track to decode: the default track if it is audio, else the first audio track.
pub(crate) fn audio_track(format: &dyn FormatReader) -> Option<&Track> {
    format
        .default_track()
        .filter(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .or_else(|| {
            format
                .tracks()
                .iter()
                .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        })
}

/// Maps an error of symphonia while opening the file.
pub(crate) fn open_error(e: SymError) -> MediaError {
    match e {
        SymError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            MediaError::Unreadable(TRUNCATED.to_owned())
        }
        SymError::IoError(e) => MediaError::Read(e),
        SymError::Unsupported(what) => {
            MediaError::Unreadable(format!("unsupported format or codec: {what}"))
        }
        other => MediaError::Unreadable(other.to_string()),
    }
}

/// Spools the whole stream to an anonymous temporary file, at most `max` bytes, and rewinds it.
pub(crate) fn spool<R: Read>(
    mut reader: R,
    size: Option<u64>,
    max: u64,
) -> Result<File, MediaError> {
    if let Some(size) = size
        && size > max
    {
        return Err(too_large_to_spool(size, max));
    }
    let mut file = tempfile::tempfile().map_err(|e| {
        MediaError::Read(io::Error::new(
            e.kind(),
            format!("creating a temporary file to spool the input: {e}"),
        ))
    })?;
    let mut buf = vec![0; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(MediaError::Read(e)),
        };
        total = total.saturating_add(n as u64);
        if total > max {
            return Err(too_large_to_spool(total, max));
        }
        let chunk = buf.get(..n).unwrap_or_default();
        if let Err(e) = file.write_all(chunk) {
            return Err(if e.kind() == ErrorKind::StorageFull {
                MediaError::TooLarge(format!(
                    "the temporary directory filled up after spooling {total} bytes"
                ))
            } else {
                MediaError::Read(io::Error::new(
                    e.kind(),
                    format!("writing the spool file: {e}"),
                ))
            });
        }
    }
    if let Some(size) = size
        && total < size
    {
        return Err(ended_early(total, size));
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| {
        MediaError::Read(io::Error::new(
            e.kind(),
            format!("rewinding the spool file: {e}"),
        ))
    })?;
    Ok(file)
}

fn too_large_to_spool(size: u64, max: u64) -> MediaError {
    MediaError::TooLarge(format!(
        "an MP4-family file must be spooled to decode it, and this one is over {size} bytes, \
         more than the {max} bytes allowed"
    ))
}

/// Decodes the first audio track of the input into `sink`, spooling MP4-family files (declared
/// or sniffed) of at most `max_spool` bytes.
pub(crate) fn decode<R, S>(
    input: Input<R>,
    max_spool: u64,
    sink: &mut S,
) -> Result<Decoded, MediaError>
where
    R: Read + Send + Sync + 'static,
    S: Sink,
{
    let Opened {
        head,
        stream,
        tracker,
        mime,
        size,
    } = open(input)?;
    let hint = hint(&mime);
    if is_mp4_family(&mime) || is_ftyp(&head) {
        let file = spool(stream, size, max_spool)?;
        let source: Box<dyn MediaSource> = Box::new(file);
        run(source, &hint, sink, None).map(|(decoded, _)| decoded)
    } else {
        let source: Box<dyn MediaSource> = Box::new(ReadOnlySource::new(stream));
        let (decoded, format) = run(source, &hint, sink, Some(&tracker)).map_err(|e| match e {
            // A parse error caused by the stream breaking is the stream's error.
            MediaError::Unreadable(_) => tracker.classify(size, e),
            e => e,
        })?;
        if let Some(e) = tracker.take_error() {
            return Err(MediaError::Read(e));
        }
        // The decoder may stop before the end of the file (trailing chunks): read the rest, so
        // that a stream cut short of its announced size is told from a complete one.
        if let Some(format) = format {
            let mut rest = format.into_inner();
            if let Err(e) = io::copy(&mut rest, &mut io::sink()) {
                return Err(tracker
                    .take_error()
                    .map_or(MediaError::Read(e), MediaError::Read));
            }
        }
        if let Some(e) = tracker.short_of(size) {
            return Err(e);
        }
        Ok(decoded)
    }
}

/// The decoding loop. Returns the format reader (to drain the rest of a stream) as well.
fn run<S: Sink>(
    source: Box<dyn MediaSource>,
    hint: &Hint,
    sink: &mut S,
    tracker: Option<&Arc<Tracker>>,
) -> Result<(Decoded, Option<Box<dyn FormatReader>>), MediaError> {
    let mss = MediaSourceStream::new(source, Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(open_error)?;
    let mut format = probed.format;
    let track = audio_track(format.as_ref())
        .ok_or_else(|| MediaError::Unreadable("the file has no audio track".to_owned()))?;
    let track_id = track.id;
    let n_frames = track.codec_params.n_frames;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(open_error)?;

    let mut spec: Option<SignalSpec> = None;
    let mut frames: u64 = 0;
    let mut skipped: u64 = 0;
    let mut demux_errors_in_a_row = 0u32;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => {
                demux_errors_in_a_row = 0;
                packet
            }
            Err(SymError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(SymError::IoError(e)) => {
                let e = tracker.and_then(|t| t.take_error()).unwrap_or(e);
                return Err(MediaError::Read(e));
            }
            Err(SymError::DecodeError(_)) if demux_errors_in_a_row < MAX_DEMUX_ERRORS_IN_A_ROW => {
                // A damaged page or frame: the demuxer resynchronizes on the next one.
                demux_errors_in_a_row += 1;
                skipped = skipped.saturating_add(1);
                continue;
            }
            Err(_) => {
                // A demuxer that lost its footing: what was decoded stands, the rest is skipped.
                skipped = skipped.saturating_add(1);
                break;
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymError::DecodeError(_) | SymError::IoError(_)) => {
                skipped = skipped.saturating_add(1);
                continue;
            }
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(open_error(e)),
        };
        if buf.frames() == 0 {
            continue;
        }
        let this = *buf.spec();
        match &spec {
            None => {
                if this.channels.count() == 0 || this.rate == 0 {
                    return Err(MediaError::Unreadable(
                        "the audio has no channels or no sample rate".to_owned(),
                    ));
                }
                sink.begin(&this, n_frames)?;
                spec = Some(this);
            }
            Some(first) if first.rate != this.rate || first.channels != this.channels => {
                return Err(MediaError::Unreadable(format!(
                    "the audio changes from {} Hz, {} channels to {} Hz, {} channels mid-stream",
                    first.rate,
                    first.channels.count(),
                    this.rate,
                    this.channels.count()
                )));
            }
            Some(_) => {}
        }
        frames = frames.saturating_add(buf.frames() as u64);
        sink.write(buf)?;
    }
    let Some(spec) = spec else {
        return Err(MediaError::Unreadable(if skipped > 0 {
            format!("no audio could be decoded ({skipped} packets failed)")
        } else {
            "the audio track holds no samples".to_owned()
        }));
    };
    let decoded = Decoded {
        sample_rate: spec.rate,
        channels: u32::try_from(spec.channels.count()).unwrap_or(u32::MAX),
        frames,
        skipped_packets: skipped,
    };
    Ok((decoded, tracker.map(|_| format)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn spool_refuses_a_declared_size_over_the_cap() {
        let err = spool(Cursor::new(vec![0u8; 10]), Some(11), 10).unwrap_err();
        assert!(matches!(err, MediaError::TooLarge(_)), "{err}");
    }

    #[test]
    fn spool_refuses_a_stream_over_the_cap() {
        let err = spool(Cursor::new(vec![0u8; 11]), None, 10).unwrap_err();
        assert!(matches!(err, MediaError::TooLarge(_)), "{err}");
    }

    #[test]
    fn spool_reports_a_stream_short_of_its_size() {
        let err = spool(Cursor::new(vec![0u8; 5]), Some(8), 10).unwrap_err();
        assert!(matches!(err, MediaError::Read(_)), "{err}");
    }

    #[test]
    fn spool_keeps_the_bytes() {
        let mut file = spool(Cursor::new(b"abcdef".to_vec()), Some(6), 10).unwrap();
        let mut back = String::new();
        file.read_to_string(&mut back).unwrap();
        assert_eq!(back, "abcdef");
    }
}
