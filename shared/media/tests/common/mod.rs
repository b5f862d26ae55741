//! Signals and files generated for the tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::f64::consts::PI;
use std::io::{self, Cursor, Read};

use media::Input;

/// PCM sample formats of the generated WAV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Int16,
    Int24,
    Float32,
}

/// A WAV file of interleaved samples in −1..1 (WAVE_FORMAT_EXTENSIBLE with the standard channel
/// mask when there are more than two channels).
pub fn wav(channels: u16, rate: u32, format: Format, samples: &[f64]) -> Vec<u8> {
    let bits: u16 = match format {
        Format::Int16 => 16,
        Format::Int24 => 24,
        Format::Float32 => 32,
    };
    let block = channels * bits / 8;
    let mut data = Vec::with_capacity(samples.len() * usize::from(bits / 8));
    for &s in samples {
        match format {
            Format::Int16 => {
                let v = (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
                data.extend_from_slice(&v.to_le_bytes());
            }
            Format::Int24 => {
                let v = (s * 8_388_608.0).round().clamp(-8_388_608.0, 8_388_607.0) as i32;
                data.extend_from_slice(&v.to_le_bytes()[..3]);
            }
            Format::Float32 => data.extend_from_slice(&(s as f32).to_le_bytes()),
        }
    }
    let extensible = channels > 2;
    let mut fmt = Vec::new();
    let tag: u16 = if extensible {
        0xFFFE
    } else if format == Format::Float32 {
        3
    } else {
        1
    };
    fmt.extend_from_slice(&tag.to_le_bytes());
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    fmt.extend_from_slice(&block.to_le_bytes());
    fmt.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        let mask: u32 = (1u32 << channels) - 1;
        fmt.extend_from_slice(&mask.to_le_bytes());
        let sub: u16 = if format == Format::Float32 { 3 } else { 1 };
        fmt.extend_from_slice(&sub.to_le_bytes());
        fmt.extend_from_slice(&[
            0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
        ]);
    }
    let mut out = Vec::with_capacity(data.len() + 80);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((4 + 8 + fmt.len() + 8 + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    out.extend_from_slice(&fmt);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// A sine of `freq` Hz at `level_db` dBFS peak for `seconds` at `rate`, in `channels`
/// identical channels, starting at phase `phase_deg`, appended to `out` from sample `*n`.
#[allow(clippy::too_many_arguments)]
pub fn sine_into(
    out: &mut Vec<f64>,
    n: &mut u64,
    rate: u32,
    channels: usize,
    freq: f64,
    amplitude: f64,
    phase_deg: f64,
    seconds: f64,
) {
    let frames = (seconds * f64::from(rate)).round() as u64;
    for _ in 0..frames {
        let t = *n as f64 / f64::from(rate);
        let s = amplitude * (2.0 * PI * freq * t + phase_deg.to_radians()).sin();
        for _ in 0..channels {
            out.push(s);
        }
        *n += 1;
    }
}

/// Stereo 1 kHz at 48 kHz: `(level dBFS, seconds)` segments, continuous phase.
pub fn stereo_1k(segments: &[(f64, f64)]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut n = 0;
    for &(level, seconds) in segments {
        sine_into(
            &mut out,
            &mut n,
            48_000,
            2,
            1000.0,
            10f64.powf(level / 20.0),
            0.0,
            seconds,
        );
    }
    out
}

/// A reader that is only a reader (like the worker's bridge from S3): no `Seek`.
#[derive(Debug)]
pub struct Stream(pub Cursor<Vec<u8>>);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Small, uneven reads, as a network stream gives.
        let n = buf.len().min(7919);
        self.0.read(&mut buf[..n])
    }
}

/// An input over these bytes, with their size.
pub fn input(bytes: Vec<u8>, mime: &str) -> Input<Stream> {
    let size = bytes.len() as u64;
    Input::new(Stream(Cursor::new(bytes)), mime, Some(size))
}

/// An input over these bytes, size unknown.
pub fn input_unsized(bytes: Vec<u8>, mime: &str) -> Input<Stream> {
    Input::new(Stream(Cursor::new(bytes)), mime, None)
}

/// A reader that fails with `ConnectionReset` after `ok_bytes` bytes.
#[derive(Debug)]
pub struct Breaks {
    pub data: Cursor<Vec<u8>>,
    pub ok_bytes: u64,
}

impl Read for Breaks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.ok_bytes.saturating_sub(self.data.position());
        if left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ));
        }
        let n = buf.len().min(left as usize).min(4096);
        self.data.read(&mut buf[..n])
    }
}

/// An input that breaks after `ok_bytes`.
pub fn breaking(bytes: Vec<u8>, mime: &str, ok_bytes: u64) -> Input<Breaks> {
    let size = bytes.len() as u64;
    Input::new(
        Breaks {
            data: Cursor::new(bytes),
            ok_bytes,
        },
        mime,
        Some(size),
    )
}

/// A test data file.
pub fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The raw AAC frames of an ADTS stream (headers stripped).
pub fn adts_frames(adts: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos + 7 <= adts.len() {
        let h = &adts[pos..pos + 7];
        assert_eq!(h[0], 0xFF);
        let protection_absent = h[1] & 1 == 1;
        let len = ((usize::from(h[3]) & 0x03) << 11)
            | (usize::from(h[4]) << 3)
            | (usize::from(h[5]) >> 5);
        let header = if protection_absent { 7 } else { 9 };
        frames.push(adts[pos + header..pos + len].to_vec());
        pos += len;
    }
    frames
}
