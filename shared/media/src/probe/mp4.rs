//! MP4 / M4A / QuickTime: the top-level boxes walked from the stream, and a bounds-checked
//! parser of the `moov` box (ISO/IEC 14496-12 and the QuickTime File Format).
//!
//! The `mp4` crate is not used to parse: its sample-entry reader knows `avc1`, `hev1`, `vp09`,
//! `mp4a` and `tx3g` only (no `hvc1`, `av01`, `alac`, `Opus`, QuickTime PCM or ProRes), and it
//! cannot read QuickTime sound descriptions of versions 1 and 2. Every read here is checked
//! against its buffer, every sum saturates or is checked, nothing is allocated from a size field:
//! a malformed box is [`MediaError::Unreadable`], never a panic.

use std::io::{self, Read};

use crate::MediaError;
use crate::probe::{Probe, Track, bit_rate, kind};
use crate::stream::{TRUNCATED, Tracker, io_error};

/// The largest `moov` box read (64 MiB: a few hours of video indexed sample by sample).
pub const MAX_MOOV_BYTES: u64 = 64 * 1024 * 1024;

/// The largest `ftyp` box read.
const MAX_FTYP_BYTES: u64 = 64 * 1024;

/// Probes an MP4-family stream.
pub(crate) fn probe<R: Read>(
    mut stream: R,
    tracker: &Tracker,
    size: Option<u64>,
    mime: &str,
) -> Result<Probe, MediaError> {
    let (ftyp, moov, at_end) = walk(&mut stream, tracker, size)?;
    let major_brand = ftyp.as_ref().and_then(|f| f.get(0..4)).map(fourcc);
    let container = match major_brand.as_deref() {
        Some("qt  ") => "mov",
        None if mime == "video/quicktime" => "mov",
        _ => "mp4",
    };
    let movie = parse_moov(&moov)?;
    if movie.tracks.is_empty() {
        return Err(MediaError::Unreadable(
            "the file has no audio or video track".to_owned(),
        ));
    }
    let known_size = size.or(at_end.then(|| tracker.bytes()));
    Ok(Probe {
        kind: kind(&movie.tracks),
        container: container.to_owned(),
        duration_seconds: movie.duration,
        bit_rate: bit_rate(known_size, movie.duration),
        tracks: movie.tracks,
    })
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end of the stream before the first.
fn read_header_bytes<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).unwrap_or_default();
        match r.read(rest) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads a box's payload of `len` bytes (`None`: to the end of the stream), at most `max`.
fn read_payload<R: Read>(
    r: &mut R,
    len: Option<u64>,
    max: u64,
    name: &str,
    tracker: &Tracker,
    size: Option<u64>,
) -> Result<Vec<u8>, MediaError> {
    if let Some(len) = len
        && len > max
    {
        return Err(too_big(name, len, max));
    }
    // Grown as the bytes arrive, never reserved from the size field: a 40-byte file claiming a
    // 64 MiB `moov` allocates 40 bytes.
    let mut data = Vec::new();
    let limit = len.unwrap_or(max.saturating_add(1));
    r.take(limit)
        .read_to_end(&mut data)
        .map_err(|e| io_error(e, tracker.bytes(), size, name))?;
    match len {
        Some(len) if (data.len() as u64) < len => Err(io_error(
            io::ErrorKind::UnexpectedEof.into(),
            tracker.bytes(),
            size,
            name,
        )),
        None if data.len() as u64 > max => Err(too_big(name, data.len() as u64, max)),
        _ => Ok(data),
    }
}

fn too_big(name: &str, len: u64, max: u64) -> MediaError {
    if name == "moov" {
        MediaError::TooLarge(format!(
            "the moov box is {len} bytes or more, more than the {max} allowed"
        ))
    } else {
        MediaError::Unreadable(format!("the {name} box is implausibly large ({len} bytes)"))
    }
}

/// Walks the top-level boxes up to the `moov`. Returns the `ftyp` and `moov` payloads and
/// whether the stream was read to its end.
#[allow(clippy::type_complexity)]
fn walk<R: Read>(
    r: &mut R,
    tracker: &Tracker,
    size: Option<u64>,
) -> Result<(Option<Vec<u8>>, Vec<u8>, bool), MediaError> {
    let mut ftyp = None;
    let mut first = true;
    loop {
        let mut header = [0u8; 8];
        let more = read_header_bytes(r, &mut header)
            .map_err(|e| io_error(e, tracker.bytes(), size, "box header"))?;
        if !more {
            return Err(MediaError::Unreadable(format!(
                "{TRUNCATED}, or not an MP4 / QuickTime file: no moov box"
            )));
        }
        let [s0, s1, s2, s3, t0, t1, t2, t3] = header;
        let size32 = u32::from_be_bytes([s0, s1, s2, s3]);
        let kind = [t0, t1, t2, t3];
        if !kind
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == 0xA9)
        {
            return Err(MediaError::Unreadable(if first {
                "not an MP4 / QuickTime file".to_owned()
            } else {
                "an MP4 box has an invalid type: the file is corrupt".to_owned()
            }));
        }
        first = false;
        let name = fourcc(&kind);
        let payload_len: Option<u64> = match size32 {
            0 => None,
            1 => {
                let mut large = [0u8; 8];
                if !read_header_bytes(r, &mut large)
                    .map_err(|e| io_error(e, tracker.bytes(), size, "box header"))?
                {
                    return Err(io_error(
                        io::ErrorKind::UnexpectedEof.into(),
                        tracker.bytes(),
                        size,
                        "box header",
                    ));
                }
                let large = u64::from_be_bytes(large);
                Some(large.checked_sub(16).ok_or_else(|| bad_size(&name))?)
            }
            n => Some(u64::from(n).checked_sub(8).ok_or_else(|| bad_size(&name))?),
        };
        match &kind {
            b"moov" => {
                let moov = read_payload(r, payload_len, MAX_MOOV_BYTES, "moov", tracker, size)?;
                // At the end of the stream (moov last), its size is known: one byte tells.
                let at_end = payload_len.is_none() || matches!(r.read(&mut [0u8; 1]), Ok(0));
                return Ok((ftyp, moov, at_end));
            }
            b"ftyp" if ftyp.is_none() => {
                ftyp = Some(read_payload(
                    r,
                    payload_len,
                    MAX_FTYP_BYTES,
                    "ftyp",
                    tracker,
                    size,
                )?);
            }
            _ => {
                let skipped = match payload_len {
                    Some(len) => io::copy(&mut r.take(len), &mut io::sink()),
                    None => io::copy(r, &mut io::sink()),
                }
                .map_err(|e| io_error(e, tracker.bytes(), size, &name))?;
                if let Some(len) = payload_len
                    && skipped < len
                {
                    return Err(io_error(
                        io::ErrorKind::UnexpectedEof.into(),
                        tracker.bytes(),
                        size,
                        &format!("{name} box"),
                    ));
                }
            }
        }
    }
}

fn bad_size(name: &str) -> MediaError {
    MediaError::Unreadable(format!("the {name} box has an invalid size"))
}

fn fourcc(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                char::from(c)
            } else {
                '?'
            }
        })
        .collect()
}

fn corrupt(what: &str) -> MediaError {
    MediaError::Unreadable(format!("the {what} box is corrupt"))
}

/// Bounds-checked big-endian reads.
trait Bytes {
    fn u8_at(&self, at: usize) -> Option<u8>;
    fn u16_at(&self, at: usize) -> Option<u16>;
    fn u32_at(&self, at: usize) -> Option<u32>;
    fn u64_at(&self, at: usize) -> Option<u64>;
    fn from(&self, at: usize) -> &[u8];
}

impl Bytes for [u8] {
    fn u8_at(&self, at: usize) -> Option<u8> {
        self.get(at).copied()
    }
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b = self.get(at..at.checked_add(2)?)?;
        Some(u16::from_be_bytes(b.try_into().ok()?))
    }
    fn u32_at(&self, at: usize) -> Option<u32> {
        let b = self.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes(b.try_into().ok()?))
    }
    fn u64_at(&self, at: usize) -> Option<u64> {
        let b = self.get(at..at.checked_add(8)?)?;
        Some(u64::from_be_bytes(b.try_into().ok()?))
    }
    fn from(&self, at: usize) -> &[u8] {
        self.get(at..).unwrap_or_default()
    }
}

/// The child boxes of a payload: `(type, payload)`.
struct Boxes<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<([u8; 4], &'a [u8]), MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Fewer than 8 bytes left: padding (QuickTime ends some lists with a 4-byte zero).
        if self.data.len() < 8 {
            return None;
        }
        let size32 = self.data.u32_at(0)?;
        let kind: [u8; 4] = self.data.get(4..8)?.try_into().ok()?;
        let (header, total) = match size32 {
            0 => (8usize, self.data.len() as u64),
            1 => match self.data.u64_at(8) {
                Some(large) => (16, large),
                None => return Some(Err(corrupt(&fourcc(&kind)))),
            },
            n => (8, u64::from(n)),
        };
        let total = match usize::try_from(total) {
            Ok(t) if t >= header && t <= self.data.len() => t,
            _ => {
                self.data = &[];
                return Some(Err(MediaError::Unreadable(format!(
                    "the {} box overruns its parent: the file is corrupt",
                    fourcc(&kind)
                ))));
            }
        };
        let payload = self.data.get(header..total).unwrap_or_default();
        self.data = self.data.get(total..).unwrap_or_default();
        Some(Ok((kind, payload)))
    }
}

fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes { data }
}

/// What the `moov` says.
struct Movie {
    duration: Option<f64>,
    tracks: Vec<Track>,
}

/// `(timescale, duration)` of an `mvhd` or `mdhd` payload; `None` duration when unknown.
fn time_header(p: &[u8], what: &str) -> Result<(u32, Option<u64>), MediaError> {
    let version = p.u8_at(0).ok_or_else(|| corrupt(what))?;
    let (timescale, duration) = if version == 1 {
        (p.u32_at(20), p.u64_at(24))
    } else {
        (
            p.u32_at(12),
            p.u32_at(16).map(|d| {
                if d == u32::MAX {
                    u64::MAX
                } else {
                    u64::from(d)
                }
            }),
        )
    };
    let timescale = timescale.ok_or_else(|| corrupt(what))?;
    let duration = duration.ok_or_else(|| corrupt(what))?;
    Ok((timescale, (duration != u64::MAX).then_some(duration)))
}

fn seconds(duration: Option<u64>, timescale: u32) -> Option<f64> {
    let duration = duration?;
    (timescale > 0 && duration > 0).then(|| duration as f64 / f64::from(timescale))
}

fn parse_moov(moov: &[u8]) -> Result<Movie, MediaError> {
    let mut movie_time: Option<(u32, Option<u64>)> = None;
    let mut fragment_duration: Option<u64> = None;
    let mut tracks = Vec::new();
    for child in boxes(moov) {
        let (kind, payload) = child?;
        match &kind {
            b"mvhd" => movie_time = Some(time_header(payload, "mvhd")?),
            b"trak" => {
                if let Some(track) = parse_trak(payload)? {
                    tracks.push(track);
                }
            }
            b"mvex" => {
                for child in boxes(payload) {
                    let (kind, p) = child?;
                    if &kind == b"mehd" {
                        fragment_duration = if p.u8_at(0) == Some(1) {
                            p.u64_at(4)
                        } else {
                            p.u32_at(4).map(u64::from)
                        };
                    }
                }
            }
            _ => {}
        }
    }
    let (timescale, duration) = movie_time.ok_or_else(|| {
        MediaError::Unreadable("the moov box has no mvhd: the file is corrupt".to_owned())
    })?;
    let duration =
        seconds(duration.filter(|d| *d > 0).or(fragment_duration), timescale).or_else(|| {
            tracks
                .iter()
                .filter_map(|t| match t {
                    Track::Audio {
                        duration_seconds, ..
                    }
                    | Track::Video {
                        duration_seconds, ..
                    } => *duration_seconds,
                })
                .reduce(f64::max)
        });
    Ok(Movie { duration, tracks })
}

/// The first sample entry of an `stsd`.
enum Entry {
    Video {
        codec: String,
        width: u32,
        height: u32,
    },
    Audio {
        codec: String,
        sample_rate: u32,
        channels: u32,
        sample_size: u32,
    },
}

#[derive(Default)]
struct Trak {
    handler: Option<[u8; 4]>,
    timescale: u32,
    duration: Option<u64>,
    /// Display size from `tkhd`, with 90° rotations applied.
    display: Option<(u32, u32)>,
    entry: Option<Entry>,
    sample_count: u64,
    stts_duration: u64,
}

fn parse_trak(trak: &[u8]) -> Result<Option<Track>, MediaError> {
    let mut t = Trak::default();
    for child in boxes(trak) {
        let (kind, payload) = child?;
        match &kind {
            b"tkhd" => t.display = parse_tkhd(payload)?,
            b"mdia" => parse_mdia(payload, &mut t)?,
            _ => {}
        }
    }
    let handler = t.handler.unwrap_or(*b"    ");
    let duration_seconds = seconds(t.duration.filter(|d| *d > 0), t.timescale)
        .or_else(|| seconds(Some(t.stts_duration), t.timescale));
    let track = match (&handler, t.entry) {
        (
            b"vide",
            Some(Entry::Video {
                codec,
                width,
                height,
            }),
        ) => {
            let (width, height) = match t.display {
                Some((w, h)) if w > 0 && h > 0 => (w, h),
                _ => (width, height),
            };
            let frame_rate = duration_seconds
                .filter(|_| t.sample_count > 0)
                .map(|d| t.sample_count as f64 / d)
                .filter(|f| f.is_finite());
            Some(Track::Video {
                codec,
                width,
                height,
                frame_rate,
                duration_seconds,
            })
        }
        (
            b"soun",
            Some(Entry::Audio {
                codec,
                sample_rate,
                channels,
                sample_size,
            }),
        ) => {
            let sample_rate = if sample_rate > 0 {
                sample_rate
            } else {
                t.timescale
            };
            let lossless = codec == "pcm" || codec == "alac" || codec == "flac";
            Some(Track::Audio {
                codec,
                sample_rate: (sample_rate > 0).then_some(sample_rate),
                channels: (channels > 0).then_some(channels),
                bits_per_sample: (lossless && sample_size > 0).then_some(sample_size),
                duration_seconds,
            })
        }
        _ => None,
    };
    Ok(track)
}

/// The display size of a `tkhd` (16.16 fixed point), swapped for a ±90° rotation matrix.
fn parse_tkhd(p: &[u8]) -> Result<Option<(u32, u32)>, MediaError> {
    let version = p.u8_at(0).ok_or_else(|| corrupt("tkhd"))?;
    let matrix = if version == 1 { 52 } else { 40 };
    let (Some(a), Some(d), Some(w), Some(h)) = (
        p.u32_at(matrix),
        p.u32_at(matrix + 16),
        p.u32_at(matrix + 36),
        p.u32_at(matrix + 40),
    ) else {
        // A short tkhd (some writers) gives no display size: the sample entry's is used.
        return Ok(None);
    };
    let (w, h) = (w >> 16, h >> 16);
    Ok(Some(if a == 0 && d == 0 { (h, w) } else { (w, h) }))
}

fn parse_mdia(mdia: &[u8], t: &mut Trak) -> Result<(), MediaError> {
    for child in boxes(mdia) {
        let (kind, p) = child?;
        match &kind {
            b"mdhd" => {
                let (timescale, duration) = time_header(p, "mdhd")?;
                t.timescale = timescale;
                t.duration = duration;
            }
            b"hdlr" => {
                t.handler = p.get(8..12).and_then(|h| <[u8; 4]>::try_from(h).ok());
            }
            b"minf" => {
                for child in boxes(p) {
                    let (kind, p) = child?;
                    if &kind == b"stbl" {
                        parse_stbl(p, t)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_stbl(stbl: &[u8], t: &mut Trak) -> Result<(), MediaError> {
    for child in boxes(stbl) {
        let (kind, p) = child?;
        match &kind {
            b"stsd" => {
                if let Some(first) = boxes(p.from(8)).next() {
                    let (kind, entry) = first?;
                    t.entry = parse_entry(kind, entry)?;
                }
            }
            b"stts" => {
                let count = p.u32_at(4).ok_or_else(|| corrupt("stts"))?;
                let entries = p.from(8);
                for e in entries.chunks_exact(8).take(count as usize) {
                    let n = e.u32_at(0).unwrap_or(0);
                    let delta = e.u32_at(4).unwrap_or(0);
                    t.sample_count = t.sample_count.saturating_add(u64::from(n));
                    t.stts_duration = t
                        .stts_duration
                        .saturating_add(u64::from(n).saturating_mul(u64::from(delta)));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn video_codec(kind: &[u8; 4]) -> Option<&'static str> {
    Some(match kind {
        b"avc1" | b"avc2" | b"avc3" | b"avc4" => "h264",
        b"hvc1" | b"hev1" | b"dvh1" | b"dvhe" => "hevc",
        b"vp08" => "vp8",
        b"vp09" => "vp9",
        b"av01" => "av1",
        b"mp4v" => "mpeg4",
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores",
        b"jpeg" | b"mjpa" | b"mjpb" => "mjpeg",
        b"s263" | b"h263" => "h263",
        b"encv" => "encrypted",
        _ => return None,
    })
}

fn audio_codec(kind: &[u8; 4]) -> Option<&'static str> {
    Some(match kind {
        b"mp4a" => "aac",
        b"alac" => "alac",
        b"Opus" => "opus",
        b"fLaC" => "flac",
        b"ac-3" => "ac3",
        b"ec-3" => "eac3",
        b".mp3" => "mp3",
        b"sowt" | b"twos" | b"lpcm" | b"in24" | b"in32" | b"fl32" | b"fl64" | b"raw " | b"NONE" => {
            "pcm"
        }
        b"ulaw" => "pcm_mulaw",
        b"alaw" => "pcm_alaw",
        b"samr" => "amr_nb",
        b"sawb" => "amr_wb",
        b"enca" => "encrypted",
        _ => return None,
    })
}

/// A sample entry (`p` is its payload, after the 8-byte box header).
fn parse_entry(kind: [u8; 4], p: &[u8]) -> Result<Option<Entry>, MediaError> {
    if let Some(codec) = video_codec(&kind) {
        let (Some(width), Some(height)) = (p.u16_at(24), p.u16_at(26)) else {
            return Err(corrupt("video sample entry"));
        };
        return Ok(Some(Entry::Video {
            codec: codec.to_owned(),
            width: u32::from(width),
            height: u32::from(height),
        }));
    }
    // Audio, or an unknown entry read as audio if it is long enough (the handler decides
    // whether it is used).
    let version = p.u16_at(8).ok_or_else(|| corrupt("sample entry"))?;
    let (Some(channels), Some(sample_size), Some(rate)) =
        (p.u16_at(16), p.u16_at(18), p.u32_at(24))
    else {
        return Ok(video_or_other(kind, p));
    };
    let (mut channels, mut sample_size, mut sample_rate) =
        (u32::from(channels), u32::from(sample_size), rate >> 16);
    let children_at = match version {
        1 => 44,
        2 => {
            // QuickTime sound description v2: the real values follow.
            if let (Some(rate), Some(ch), Some(bits)) = (p.u64_at(32), p.u32_at(40), p.u32_at(48)) {
                let rate = f64::from_bits(rate);
                sample_rate = if rate.is_finite() && rate > 0.0 && rate < 1e7 {
                    rate.round() as u32
                } else {
                    0
                };
                channels = ch;
                sample_size = bits;
            }
            64
        }
        _ => 28,
    };
    let codec = match audio_codec(&kind) {
        Some("aac") => match esds(p.from(children_at)) {
            Some(es) => {
                // The sample entry's channel count is informative (writers put 2 for mono);
                // the AudioSpecificConfig's is the stream's.
                if let Some((rate, ch)) = es.audio_config {
                    if ch > 0 {
                        channels = ch;
                    }
                    if sample_rate == 0 {
                        sample_rate = rate;
                    }
                }
                object_type_codec(es.object_type).to_owned()
            }
            None => "aac".to_owned(),
        },
        Some(codec) => codec.to_owned(),
        None => fourcc(&kind).trim_end().to_owned(),
    };
    Ok(Some(Entry::Audio {
        codec,
        sample_rate,
        channels,
        sample_size,
    }))
}

/// An unknown entry too short for audio: a video entry of an unknown codec, if it has the size.
fn video_or_other(kind: [u8; 4], p: &[u8]) -> Option<Entry> {
    let (width, height) = (p.u16_at(24)?, p.u16_at(26)?);
    Some(Entry::Video {
        codec: fourcc(&kind).trim_end().to_owned(),
        width: u32::from(width),
        height: u32::from(height),
    })
}

/// What an `esds` says of its stream.
struct Es {
    object_type: u8,
    /// Sample rate and channel count from the AudioSpecificConfig (AAC only).
    audio_config: Option<(u32, u32)>,
}

/// The `esds` of an `mp4a` entry, directly or in a QuickTime `wave` box.
fn esds(children: &[u8]) -> Option<Es> {
    for child in boxes(children) {
        let Ok((kind, p)) = child else {
            return None;
        };
        match &kind {
            b"esds" => return es_descriptor(p.from(4)),
            b"wave" => {
                if let Some(es) = esds(p) {
                    return Some(es);
                }
            }
            _ => {}
        }
    }
    None
}

fn object_type_codec(oti: u8) -> &'static str {
    match oti {
        0x69 | 0x6B => "mp3",
        0xA5 => "ac3",
        0xA6 => "eac3",
        0xA9 | 0xAC => "dts",
        0xAD => "opus",
        0xDD => "vorbis",
        _ => "aac",
    }
}

/// A descriptor's tag, length and body offset at `at`.
fn descriptor(d: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let tag = d.u8_at(at)?;
    let mut len: usize = 0;
    let mut pos = at.checked_add(1)?;
    for _ in 0..4 {
        let b = d.u8_at(pos)?;
        pos = pos.checked_add(1)?;
        len = (len << 7) | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            break;
        }
    }
    Some((tag, len, pos))
}

/// An ES_Descriptor: its DecoderConfigDescriptor's objectTypeIndication and, for AAC, the
/// AudioSpecificConfig of its DecoderSpecificInfo.
fn es_descriptor(d: &[u8]) -> Option<Es> {
    let (tag, _, mut pos) = descriptor(d, 0)?;
    if tag != 0x03 {
        return None;
    }
    let flags = d.u8_at(pos.checked_add(2)?)?;
    pos = pos.checked_add(3)?;
    if flags & 0x80 != 0 {
        pos = pos.checked_add(2)?;
    }
    if flags & 0x40 != 0 {
        let url_len = d.u8_at(pos)?;
        pos = pos.checked_add(1 + usize::from(url_len))?;
    }
    if flags & 0x20 != 0 {
        pos = pos.checked_add(2)?;
    }
    let (tag, _, body) = descriptor(d, pos)?;
    if tag != 0x04 {
        return None;
    }
    let object_type = d.u8_at(body)?;
    let audio_config = body
        .checked_add(13)
        .and_then(|at| descriptor(d, at))
        .filter(|(tag, _, _)| *tag == 0x05)
        .and_then(|(_, len, at)| audio_specific_config(d.get(at..at.checked_add(len)?)?));
    Some(Es {
        object_type,
        audio_config,
    })
}

/// Sample rate and channel count of an AAC AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
fn audio_specific_config(asc: &[u8]) -> Option<(u32, u32)> {
    const RATES: [u32; 13] = [
        96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025,
        8_000, 7_350,
    ];
    let mut bits = asc
        .iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let total = 8 * asc.len().min(8) as u32;
    bits <<= 64 - total.max(1);
    let mut used = 0u32;
    let mut take = |n: u32| -> Option<u32> {
        if used + n > total {
            return None;
        }
        let v = (bits << used) >> (64 - n);
        used += n;
        u32::try_from(v).ok()
    };
    let object_type = take(5)?;
    if object_type == 31 {
        take(6)?;
    }
    let index = take(4)?;
    let rate = if index == 15 {
        take(24)?
    } else {
        RATES.get(index as usize).copied().unwrap_or(0)
    };
    let channels = match take(4)? {
        7 => 8,
        c @ 1..=6 => c,
        _ => 0,
    };
    Some((rate, channels))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = (payload.len() as u32 + 8).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn a_rotated_track_has_its_display_size_swapped() {
        let mut tkhd = vec![0u8; 84];
        let put =
            |t: &mut Vec<u8>, at: usize, v: u32| t[at..at + 4].copy_from_slice(&v.to_be_bytes());
        put(&mut tkhd, 76, 1920 << 16);
        put(&mut tkhd, 80, 1080 << 16);
        put(&mut tkhd, 40, 0x1_0000); // identity: a = d = 1
        put(&mut tkhd, 56, 0x1_0000);
        assert_eq!(parse_tkhd(&tkhd).unwrap(), Some((1920, 1080)));
        put(&mut tkhd, 40, 0); // 90°: a = d = 0, b = 1, c = -1
        put(&mut tkhd, 56, 0);
        put(&mut tkhd, 44, 0x1_0000);
        put(&mut tkhd, 52, 0xFFFF_0000);
        assert_eq!(parse_tkhd(&tkhd).unwrap(), Some((1080, 1920)));
        assert_eq!(parse_tkhd(&tkhd[..60]).unwrap(), None);
    }

    #[test]
    fn audio_specific_config() {
        // AAC LC, 44.1 kHz, mono; AAC LC, 48 kHz, stereo; explicit 7350 Hz, 5.1.
        assert_eq!(
            super::audio_specific_config(&[0x12, 0x08]),
            Some((44_100, 1))
        );
        assert_eq!(
            super::audio_specific_config(&[0x11, 0x90]),
            Some((48_000, 2))
        );
        assert_eq!(
            super::audio_specific_config(&[0x17, 0x80, 0x0E, 0x5B, 0x30]),
            Some((7350, 6))
        );
        assert_eq!(super::audio_specific_config(&[0x12]), None);
        assert_eq!(super::audio_specific_config(&[]), None);
    }

    #[test]
    fn boxes_reject_overruns_without_panicking() {
        let mut data = bx(b"free", &[0; 4]);
        data.extend_from_slice(&[0, 0, 0, 40, b'x', b'x', b'x', b'x', 1, 2]);
        let all: Vec<_> = boxes(&data).collect();
        assert_eq!(all.len(), 2);
        assert!(all[0].is_ok());
        assert!(all[1].is_err());
    }

    #[test]
    fn every_truncation_of_a_moov_is_an_error_or_a_result_never_a_panic() {
        let stsd_entry = {
            let mut e = vec![0u8; 78];
            e[24..26].copy_from_slice(&640u16.to_be_bytes());
            e[26..28].copy_from_slice(&360u16.to_be_bytes());
            bx(b"avc1", &e)
        };
        let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
        stsd.extend(stsd_entry);
        let stts = [0u32, 1, 50, 512]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<_>>();
        let stbl = [bx(b"stsd", &stsd), bx(b"stts", &stts)].concat();
        let minf = bx(b"stbl", &stbl);
        let mut mdhd = vec![0u8; 24];
        mdhd[12..16].copy_from_slice(&12_800u32.to_be_bytes());
        mdhd[16..20].copy_from_slice(&25_600u32.to_be_bytes());
        let mut hdlr = vec![0u8; 24];
        hdlr[8..12].copy_from_slice(b"vide");
        let mdia = [bx(b"mdhd", &mdhd), bx(b"hdlr", &hdlr), bx(b"minf", &minf)].concat();
        let mut mvhd = vec![0u8; 100];
        mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
        mvhd[16..20].copy_from_slice(&2000u32.to_be_bytes());
        let moov = [bx(b"mvhd", &mvhd), bx(b"trak", &bx(b"mdia", &mdia))].concat();
        let movie = parse_moov(&moov).unwrap();
        assert_eq!(movie.duration, Some(2.0));
        assert_eq!(
            movie.tracks,
            [Track::Video {
                codec: "h264".to_owned(),
                width: 640,
                height: 360,
                frame_rate: Some(25.0),
                duration_seconds: Some(2.0),
            }]
        );
        for cut in 0..moov.len() {
            let _ = parse_moov(&moov[..cut]);
            let mut garbled = moov.clone();
            garbled[cut] ^= 0xFF;
            let _ = parse_moov(&garbled);
        }
    }
}
