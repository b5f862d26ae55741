//! WebM / Matroska: a minimal EBML walker over the stream. It reads the EBML header (DocType),
//! enters the Segment (whose size may be unknown), keeps the Info and Tracks elements in memory,
//! skips the others by reading them, and stops at the first Cluster or once both are in.

use std::io::{self, Read};

use crate::MediaError;
use crate::probe::{Probe, Track, bit_rate, kind};
use crate::stream::{TRUNCATED, Tracker, io_error};

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const DEFAULT_DURATION: u32 = 0x23_E383;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const BIT_DEPTH: u32 = 0x6264;
const CLUSTER: u32 = 0x1F43_B675;

/// The largest EBML header, Info and Tracks elements read into memory.
const MAX_HEADER_BYTES: u64 = 64 * 1024;
const MAX_INFO_BYTES: u64 = 1024 * 1024;
const MAX_TRACKS_BYTES: u64 = 16 * 1024 * 1024;

/// An element header: ID (marker bits kept), data size (`None`: unknown), header length.
struct Header {
    id: u32,
    size: Option<u64>,
}

fn corrupt(what: &str) -> MediaError {
    MediaError::Unreadable(format!("the WebM / Matroska {what} is corrupt"))
}

/// Reads one byte; `Ok(None)` at the end of the stream.
fn byte<R: Read>(r: &mut R) -> io::Result<Option<u8>> {
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads a header from the stream; `Ok(None)` at a clean end of the stream.
fn read_header<R: Read>(
    r: &mut R,
    tracker: &Tracker,
    size: Option<u64>,
) -> Result<Option<(Header, u64)>, MediaError> {
    let io = |e| io_error(e, tracker.bytes(), size, "element header");
    let eof = || {
        io_error(
            io::ErrorKind::UnexpectedEof.into(),
            tracker.bytes(),
            size,
            "element header",
        )
    };
    let Some(first) = byte(r).map_err(io)? else {
        return Ok(None);
    };
    let id_len = first.leading_zeros() + 1;
    if id_len > 4 {
        return Err(corrupt("element ID"));
    }
    let mut id = u32::from(first);
    for _ in 1..id_len {
        let b = byte(r).map_err(io)?.ok_or_else(eof)?;
        id = (id << 8) | u32::from(b);
    }
    let first = byte(r).map_err(io)?.ok_or_else(eof)?;
    let size_len = first.leading_zeros() + 1;
    if size_len > 8 {
        return Err(corrupt("element size"));
    }
    let mut value = u64::from(first) & (0xFF >> size_len);
    let mut all_ones = value == (0xFF >> size_len);
    for _ in 1..size_len {
        let b = byte(r).map_err(io)?.ok_or_else(eof)?;
        all_ones &= b == 0xFF;
        value = (value << 8) | u64::from(b);
    }
    let header_len = u64::from(id_len + size_len);
    Ok(Some((
        Header {
            id,
            size: (!all_ones).then_some(value),
        },
        header_len,
    )))
}

/// Reads an element's data of `len` bytes into memory, at most `max`.
fn read_data<R: Read>(
    r: &mut R,
    len: u64,
    max: u64,
    what: &str,
    tracker: &Tracker,
    size: Option<u64>,
) -> Result<Vec<u8>, MediaError> {
    if len > max {
        return Err(if what == "Tracks" {
            MediaError::TooLarge(format!(
                "the Tracks element is {len} bytes, more than the {max} allowed"
            ))
        } else {
            MediaError::Unreadable(format!("the {what} element is implausibly large"))
        });
    }
    let mut data = Vec::new();
    r.take(len)
        .read_to_end(&mut data)
        .map_err(|e| io_error(e, tracker.bytes(), size, what))?;
    if (data.len() as u64) < len {
        return Err(io_error(
            io::ErrorKind::UnexpectedEof.into(),
            tracker.bytes(),
            size,
            what,
        ));
    }
    Ok(data)
}

/// Skips `len` bytes of the stream.
fn skip<R: Read>(
    r: &mut R,
    len: u64,
    tracker: &Tracker,
    size: Option<u64>,
) -> Result<(), MediaError> {
    let skipped = io::copy(&mut r.take(len), &mut io::sink())
        .map_err(|e| io_error(e, tracker.bytes(), size, "element"))?;
    if skipped < len {
        return Err(io_error(
            io::ErrorKind::UnexpectedEof.into(),
            tracker.bytes(),
            size,
            "element",
        ));
    }
    Ok(())
}

/// The child elements of an in-memory element: `(id, data)`.
struct Elements<'a> {
    data: &'a [u8],
}

impl<'a> Elements<'a> {
    fn vint(&mut self, keep_marker: bool, max_len: u32) -> Option<(u64, bool)> {
        let (&first, _) = self.data.split_first()?;
        let len = first.leading_zeros() + 1;
        if len > max_len {
            return None;
        }
        let bytes = self.data.get(..len as usize)?;
        let mut value = if keep_marker {
            u64::from(first)
        } else {
            u64::from(first) & (0xFF >> len)
        };
        let mut all_ones = (u64::from(first) & (0xFF >> len)) == (0xFF >> len);
        for &b in bytes.get(1..).unwrap_or_default() {
            all_ones &= b == 0xFF;
            value = (value << 8) | u64::from(b);
        }
        self.data = self.data.get(len as usize..).unwrap_or_default();
        Some((value, all_ones))
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<(u32, &'a [u8]), MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let parsed = (|| {
            let (id, _) = self.vint(true, 4)?;
            let (len, unknown) = self.vint(false, 8)?;
            let len = if unknown {
                self.data.len()
            } else {
                usize::try_from(len).ok()?
            };
            let body = self.data.get(..len)?;
            self.data = self.data.get(len..).unwrap_or_default();
            Some((u32::try_from(id).ok()?, body))
        })();
        match parsed {
            Some(item) => Some(Ok(item)),
            None => {
                self.data = &[];
                Some(Err(corrupt("element")))
            }
        }
    }
}

fn elements(data: &[u8]) -> Elements<'_> {
    Elements { data }
}

fn uint(d: &[u8]) -> Result<u64, MediaError> {
    if d.len() > 8 {
        return Err(corrupt("integer"));
    }
    Ok(d.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)))
}

fn float(d: &[u8]) -> Result<f64, MediaError> {
    match d.len() {
        0 => Ok(0.0),
        4 => Ok(f64::from(f32::from_be_bytes(
            d.try_into().map_err(|_| corrupt("float"))?,
        ))),
        8 => Ok(f64::from_be_bytes(
            d.try_into().map_err(|_| corrupt("float"))?,
        )),
        _ => Err(corrupt("float")),
    }
}

fn string(d: &[u8]) -> String {
    let end = d.iter().position(|b| *b == 0).unwrap_or(d.len());
    String::from_utf8_lossy(d.get(..end).unwrap_or_default()).into_owned()
}

fn codec_name(id: &str) -> String {
    let name = match id {
        "V_VP9" => "vp9",
        "V_VP8" => "vp8",
        "V_AV1" => "av1",
        "V_MPEG4/ISO/AVC" => "h264",
        "V_MPEGH/ISO/HEVC" => "hevc",
        "V_THEORA" => "theora",
        "V_PRORES" => "prores",
        "A_OPUS" => "opus",
        "A_VORBIS" => "vorbis",
        "A_FLAC" => "flac",
        "A_ALAC" => "alac",
        "A_MPEG/L3" => "mp3",
        "A_MPEG/L2" => "mp2",
        "A_AC3" => "ac3",
        "A_EAC3" => "eac3",
        "A_DTS" => "dts",
        id if id.starts_with("A_AAC") => "aac",
        id if id.starts_with("A_PCM") => "pcm",
        id if id.starts_with("V_MPEG4") => "mpeg4",
        other => return other.to_ascii_lowercase(),
    };
    name.to_owned()
}

#[derive(Default)]
struct Info {
    timecode_scale: Option<u64>,
    duration: Option<f64>,
}

fn parse_info(data: &[u8]) -> Result<Info, MediaError> {
    let mut info = Info::default();
    for child in elements(data) {
        let (id, d) = child?;
        match id {
            TIMECODE_SCALE => info.timecode_scale = Some(uint(d)?),
            DURATION => info.duration = Some(float(d)?),
            _ => {}
        }
    }
    Ok(info)
}

fn parse_tracks(data: &[u8]) -> Result<Vec<Track>, MediaError> {
    let mut tracks = Vec::new();
    for child in elements(data) {
        let (id, entry) = child?;
        if id != TRACK_ENTRY {
            continue;
        }
        let mut track_type = 0;
        let mut codec = String::new();
        let mut default_duration = None;
        let (mut width, mut height) = (0u32, 0u32);
        let (mut rate, mut channels, mut bits) = (8000.0, 1u64, None);
        for child in elements(entry) {
            let (id, d) = child?;
            match id {
                TRACK_TYPE => track_type = uint(d)?,
                CODEC_ID => codec = string(d),
                DEFAULT_DURATION => default_duration = Some(uint(d)?),
                VIDEO => {
                    for child in elements(d) {
                        let (id, d) = child?;
                        match id {
                            PIXEL_WIDTH => width = u32::try_from(uint(d)?).unwrap_or(0),
                            PIXEL_HEIGHT => height = u32::try_from(uint(d)?).unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                AUDIO => {
                    for child in elements(d) {
                        let (id, d) = child?;
                        match id {
                            SAMPLING_FREQUENCY => rate = float(d)?,
                            CHANNELS => channels = uint(d)?,
                            BIT_DEPTH => bits = Some(uint(d)?),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let codec = codec_name(&codec);
        match track_type {
            1 => tracks.push(Track::Video {
                codec,
                width,
                height,
                frame_rate: default_duration.filter(|d| *d > 0).map(|d| 1e9 / d as f64),
                duration_seconds: None,
            }),
            2 => {
                let lossless = codec == "pcm" || codec == "flac" || codec == "alac";
                tracks.push(Track::Audio {
                    sample_rate: (1.0..1e7).contains(&rate).then(|| rate.round() as u32),
                    channels: u32::try_from(channels).ok().filter(|c| *c > 0),
                    bits_per_sample: bits
                        .filter(|_| lossless)
                        .and_then(|b| u32::try_from(b).ok()),
                    codec,
                    duration_seconds: None,
                })
            }
            _ => {}
        }
    }
    Ok(tracks)
}

/// Probes a WebM / Matroska stream.
pub(crate) fn probe<R: Read>(
    mut r: R,
    tracker: &Tracker,
    size: Option<u64>,
) -> Result<Probe, MediaError> {
    let not_ebml = || MediaError::Unreadable("not a WebM / Matroska file".to_owned());
    let (header, _) = read_header(&mut r, tracker, size)?.ok_or_else(not_ebml)?;
    if header.id != EBML {
        return Err(not_ebml());
    }
    let len = header.size.ok_or_else(|| corrupt("EBML header"))?;
    let data = read_data(&mut r, len, MAX_HEADER_BYTES, "EBML header", tracker, size)?;
    let mut doc_type = String::from("matroska");
    for child in elements(&data) {
        let (id, d) = child?;
        if id == DOC_TYPE {
            doc_type = string(d);
        }
    }
    let container = match doc_type.as_str() {
        "webm" => "webm",
        "matroska" => "mkv",
        other => {
            return Err(MediaError::Unreadable(format!(
                "unsupported EBML document type {other:?}"
            )));
        }
    };

    // Up to the Segment.
    let mut segment_left = loop {
        let (header, _) = read_header(&mut r, tracker, size)?
            .ok_or_else(|| MediaError::Unreadable(format!("{TRUNCATED}: no Segment element")))?;
        if header.id == SEGMENT {
            break header.size;
        }
        let len = header
            .size
            .ok_or_else(|| corrupt("element before the Segment"))?;
        skip(&mut r, len, tracker, size)?;
    };

    let mut info = None;
    let mut tracks = None;
    let mut ended = false;
    while info.is_none() || tracks.is_none() {
        if segment_left == Some(0) {
            break;
        }
        let Some((header, header_len)) = read_header(&mut r, tracker, size)? else {
            ended = true;
            break;
        };
        if header.id == CLUSTER {
            break;
        }
        let len = header
            .size
            .ok_or_else(|| corrupt("element of unknown size in the Segment"))?;
        if let Some(left) = &mut segment_left {
            *left = left
                .checked_sub(header_len.saturating_add(len))
                .ok_or_else(|| corrupt("Segment (an element overruns it)"))?;
        }
        match header.id {
            INFO => {
                let data = read_data(&mut r, len, MAX_INFO_BYTES, "Info", tracker, size)?;
                info = Some(parse_info(&data)?);
            }
            TRACKS => {
                let data = read_data(&mut r, len, MAX_TRACKS_BYTES, "Tracks", tracker, size)?;
                tracks = Some(parse_tracks(&data)?);
            }
            _ => skip(&mut r, len, tracker, size)?,
        }
    }
    let tracks = tracks.ok_or_else(|| {
        MediaError::Unreadable(if ended {
            format!("{TRUNCATED}: no Tracks element")
        } else {
            "no Tracks element before the first Cluster".to_owned()
        })
    })?;
    if tracks.is_empty() {
        return Err(MediaError::Unreadable(
            "the file has no audio or video track".to_owned(),
        ));
    }
    let info = info.unwrap_or_default();
    let scale = info.timecode_scale.unwrap_or(1_000_000) as f64;
    let duration = info
        .duration
        .map(|d| d * scale / 1e9)
        .filter(|d| d.is_finite() && *d > 0.0);
    Ok(Probe {
        kind: kind(&tracks),
        container: container.to_owned(),
        duration_seconds: duration,
        bit_rate: bit_rate(size, duration),
        tracks,
    })
}
