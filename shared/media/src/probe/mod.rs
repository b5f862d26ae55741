//! The container and tracks of a file, from its metadata, reading the stream once and never
//! seeking:
//!
//! * MP4 / M4A / QuickTime (declared, or `ftyp` sniffed): the top-level boxes are walked,
//!   `ftyp` and `moov` kept (at most [`MAX_MOOV_BYTES`]), the rest (`mdat`) read and discarded
//!   until the `moov` is in; the `moov` is parsed by this crate (module `mp4`).
//! * WebM / Matroska (declared, or the EBML magic sniffed): the EBML elements are walked up to
//!   the first Cluster (module `ebml`).
//! * Audio containers (WAV, MP3, FLAC, Ogg, ADTS AAC): symphonia reads the headers; when they do
//!   not give the length (MP3 without Xing/Info header, ADTS), the packets are demuxed, not
//!   decoded, to the end to count it.

use std::io::Read;

use serde::Serialize;
use symphonia::core::codecs::{self, CodecType};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

use crate::decode::{audio_track, hint, open_error};
use crate::stream::{Opened, Sniffed, Tracked, Tracker, is_ebml, is_ftyp, open};
use crate::{Input, MediaError, essence, is_mp4_family};

mod ebml;
mod mp4;

pub use mp4::MAX_MOOV_BYTES;

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    /// `"video"` if it has a video track, else `"audio"`.
    pub kind: &'static str,
    /// `"wav"`, `"mp3"`, `"flac"`, `"ogg"`, `"aac"` (ADTS), `"mp4"` (M4A included), `"mov"`,
    /// `"webm"`, `"mkv"`.
    pub container: String,
    /// The duration the container states, seconds.
    pub duration_seconds: Option<f64>,
    /// The overall bit rate, bits per second: size × 8 / duration, when both are known.
    pub bit_rate: Option<u64>,
    /// The audio and video tracks, in file order (other tracks, e.g. subtitles, left out).
    pub tracks: Vec<Track>,
}

/// A track.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Track {
    /// An audio track.
    Audio {
        /// E.g. `"aac"`, `"mp3"`, `"opus"`, `"vorbis"`, `"flac"`, `"alac"`, `"pcm_s16le"`.
        codec: String,
        /// Hz.
        sample_rate: Option<u32>,
        /// Channel count.
        channels: Option<u32>,
        /// For PCM and lossless codecs.
        bits_per_sample: Option<u32>,
        /// Seconds.
        duration_seconds: Option<f64>,
    },
    /// A video track.
    Video {
        /// E.g. `"h264"`, `"hevc"`, `"vp9"`, `"av1"`, `"vp8"`, `"mpeg4"`, `"prores"`.
        codec: String,
        /// Display width in pixels (a 90°-rotated MP4 track has width and height swapped).
        width: u32,
        /// Display height in pixels.
        height: u32,
        /// Frames per second, when the container gives it.
        frame_rate: Option<f64>,
        /// Seconds.
        duration_seconds: Option<f64>,
    },
}

/// Probes the input.
pub fn probe<R: Read + Send + Sync + 'static>(input: Input<R>) -> Result<Probe, MediaError> {
    let Opened {
        head,
        stream,
        tracker,
        mime,
        size,
    } = open(input)?;
    let essence = essence(&mime);
    let known_audio = is_audio_magic(&head);
    let result = if is_ftyp(&head) || (!known_audio && !is_ebml(&head) && is_mp4_family(&essence)) {
        mp4::probe(stream, &tracker, size, &essence)
    } else if is_ebml(&head)
        || (!known_audio && matches!(essence.as_str(), "video/webm" | "audio/webm"))
    {
        ebml::probe(stream, &tracker, size)
    } else {
        audio(stream, &tracker, size, &mime, &head)
    };
    result.map_err(|e| match e {
        MediaError::Unreadable(_) => tracker.classify(size, e),
        e => e,
    })
}

/// Whether the head is one of the audio containers symphonia reads.
fn is_audio_magic(head: &[u8]) -> bool {
    head.starts_with(b"RIFF")
        || head.starts_with(b"RF64")
        || head.starts_with(b"fLaC")
        || head.starts_with(b"OggS")
        || head.starts_with(b"ID3")
        || matches!(head, [0xFF, b, ..] if b & 0xE0 == 0xE0)
}

/// The overall bit rate.
pub(crate) fn bit_rate(size: Option<u64>, duration: Option<f64>) -> Option<u64> {
    let (size, duration) = (size?, duration?);
    (duration > 0.0 && duration.is_finite())
        .then(|| (size as f64 * 8.0 / duration).round())
        .filter(|b| *b >= 0.0 && *b < u64::MAX as f64)
        .map(|b| b as u64)
}

/// The kind of a file with these tracks.
pub(crate) fn kind(tracks: &[Track]) -> &'static str {
    if tracks.iter().any(|t| matches!(t, Track::Video { .. })) {
        "video"
    } else {
        "audio"
    }
}

/// The name of a symphonia codec.
fn codec_name(codec: CodecType) -> String {
    if let Some(descriptor) = symphonia::default::get_codecs().get_codec(codec) {
        return descriptor.short_name.to_owned();
    }
    let name = match codec {
        codecs::CODEC_TYPE_OPUS => "opus",
        codecs::CODEC_TYPE_VORBIS => "vorbis",
        codecs::CODEC_TYPE_FLAC => "flac",
        codecs::CODEC_TYPE_MP3 => "mp3",
        codecs::CODEC_TYPE_MP2 => "mp2",
        codecs::CODEC_TYPE_MP1 => "mp1",
        codecs::CODEC_TYPE_AAC => "aac",
        codecs::CODEC_TYPE_ALAC => "alac",
        codecs::CODEC_TYPE_EAC3 => "eac3",
        codecs::CODEC_TYPE_DCA => "dts",
        codecs::CODEC_TYPE_WAVPACK => "wavpack",
        codecs::CODEC_TYPE_SPEEX => "speex",
        _ => return format!("unknown ({codec})"),
    };
    name.to_owned()
}

/// The container of an audio file, from its magic, else its codec, else its MIME type.
fn audio_container(head: &[u8], codec: CodecType, mime: &str) -> String {
    let name = if head.starts_with(b"RIFF") || head.starts_with(b"RF64") {
        "wav"
    } else if head.starts_with(b"fLaC") {
        "flac"
    } else if head.starts_with(b"OggS") {
        "ogg"
    } else if matches!(head, [0xFF, b, ..] if b & 0xF6 == 0xF0) || codec == codecs::CODEC_TYPE_AAC {
        "aac"
    } else if matches!(
        codec,
        codecs::CODEC_TYPE_MP3 | codecs::CODEC_TYPE_MP2 | codecs::CODEC_TYPE_MP1
    ) {
        "mp3"
    } else {
        match essence(mime).as_str() {
            "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
            "audio/flac" | "audio/x-flac" => "flac",
            "audio/ogg" | "audio/opus" | "application/ogg" => "ogg",
            "audio/mpeg" | "audio/mp3" => "mp3",
            "audio/aac" | "audio/x-aac" => "aac",
            _ => "unknown",
        }
    };
    name.to_owned()
}

/// An audio container, through symphonia.
fn audio<R: Read + Send + Sync + 'static>(
    stream: Sniffed<Tracked<R>>,
    tracker: &Tracker,
    size: Option<u64>,
    mime: &str,
    head: &[u8],
) -> Result<Probe, MediaError> {
    let mss = MediaSourceStream::new(Box::new(ReadOnlySource::new(stream)), Default::default());
    let mut format = symphonia::default::get_probe()
        .format(
            &hint(mime),
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(open_error)?
        .format;
    let track = audio_track(format.as_ref())
        .ok_or_else(|| MediaError::Unreadable("the file has no audio track".to_owned()))?;
    let params = track.codec_params.clone();
    let track_id = track.id;
    let seconds = |ts: u64| -> Option<f64> {
        if let Some(time_base) = params.time_base {
            let time = time_base.calc_time(ts);
            Some(time.seconds as f64 + time.frac)
        } else {
            params
                .sample_rate
                .filter(|r| *r > 0)
                .map(|r| ts as f64 / f64::from(r))
        }
    };
    let mut read_to_end = false;
    let duration = match params.n_frames {
        Some(n) => seconds(n),
        None => {
            read_to_end = true;
            demuxed_length(format.as_mut(), track_id, tracker)?.and_then(seconds)
        }
    };
    let codec = codec_name(params.codec);
    let lossless_or_pcm = params.codec == codecs::CODEC_TYPE_FLAC
        || params.codec == codecs::CODEC_TYPE_ALAC
        || params.codec == codecs::CODEC_TYPE_WAVPACK
        || codec.starts_with("pcm")
        || codec.starts_with("adpcm");
    let bits_per_sample = if lossless_or_pcm {
        params.bits_per_sample.or(params.bits_per_coded_sample)
    } else {
        None
    };
    let tracks = vec![Track::Audio {
        codec,
        sample_rate: params.sample_rate,
        channels: params
            .channels
            .and_then(|c| u32::try_from(c.count()).ok())
            .filter(|c| *c > 0),
        bits_per_sample,
        duration_seconds: duration,
    }];
    let bytes = if read_to_end {
        Some(tracker.bytes())
    } else {
        None
    };
    Ok(Probe {
        kind: "audio",
        container: audio_container(head, params.codec, mime),
        duration_seconds: duration,
        bit_rate: bit_rate(size.or(bytes), duration),
        tracks,
    })
}

/// The end timestamp of the track's last packet, demuxing (not decoding) to the end.
fn demuxed_length(
    format: &mut dyn FormatReader,
    track_id: u32,
    tracker: &Tracker,
) -> Result<Option<u64>, MediaError> {
    let mut end: Option<u64> = None;
    loop {
        match format.next_packet() {
            Ok(packet) => {
                if packet.track_id() == track_id {
                    let this = packet.ts().saturating_add(packet.dur());
                    end = Some(end.map_or(this, |e| e.max(this)));
                }
            }
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(SymError::IoError(e)) => {
                return Err(MediaError::Read(tracker.take_error().unwrap_or(e)));
            }
            Err(e) => {
                if let Some(e) = tracker.take_error() {
                    return Err(MediaError::Read(e));
                }
                if end.is_none() {
                    return Err(open_error(e));
                }
                break;
            }
        }
    }
    if let Some(e) = tracker.take_error() {
        return Err(MediaError::Read(e));
    }
    Ok(end)
}
