//! Waveform peaks in BBC audiowaveform's JSON format, version 2
//! (<https://github.com/bbc/audiowaveform/blob/master/doc/DataFormat.md>):
//!
//! ```json
//! {"version":2,"channels":1,"sample_rate":48000,"samples_per_pixel":512,"bits":8,"length":3,
//!  "data":[-65,63,-40,41,-55,43]}
//! ```
//!
//! `data` holds, per pixel, the minimum and the maximum of each channel in turn
//! (`[ch0 min, ch0 max, ch1 min, ch1 max, ...]`). The arithmetic is audiowaveform's
//! (`WaveformGenerator::process`, `WaveformBuffer::saveAsJson`):
//!
//! * samples are taken as 16-bit integers: integer PCM keeps its top 16 bits (as libsndfile
//!   reads it); decoded floating-point audio (MP3, AAC, Vorbis, float WAV) is scaled by 32768,
//!   rounded and clipped to −32768..32767, as audiowaveform's libmad path does;
//! * unless the channels are split, each frame is mixed to mono as the integer mean of its
//!   channels, truncated toward zero;
//! * a pixel covers `samples_per_pixel` frames, and the last, partial pixel is kept, so
//!   `length = ceil(frames / samples_per_pixel)`;
//! * 8-bit points are the 16-bit ones divided by 256, truncated toward zero.
//!
//! Memory is the output's: 4 bytes per pixel and channel, at most [`MAX_POINTS`] pixel-channels.

use std::io::Read;

use serde::Serialize;
use symphonia::core::audio::{AudioBufferRef, SampleBuffer, SignalSpec};

use crate::decode::{Sink, decode};
use crate::{Input, MAX_SPOOL_BYTES, MediaError};

/// The most pixels × output channels a waveform may have (4 million: 16 MB of `i16` points and
/// at most 28 MB of JSON; an hour of stereo at 256 samples a point, split, is 1.35 million).
pub const MAX_POINTS: u64 = 4_000_000;

/// How many audio frames a pixel covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// This many frames per pixel (0 is taken as 1).
    SamplesPerPixel(u32),
    /// This many pixels per second of audio: `samples_per_pixel = round(sample_rate / pps)`, at
    /// least 1 (0 is taken as 1 pixel per second). audiowaveform truncates instead of rounding;
    /// the two agree whenever the rate is a multiple of `pps`.
    PixelsPerSecond(u32),
}

/// The resolution of the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bits {
    /// −128..127.
    Eight,
    /// −32768..32767.
    Sixteen,
}

/// What to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Frames per pixel.
    pub resolution: Resolution,
    /// 8 or 16 bits.
    pub bits: Bits,
    /// One waveform per channel; `false` gives the mono mix alone, as audiowaveform does by
    /// default.
    pub split_channels: bool,
}

/// A waveform; serializes to audiowaveform's JSON (keys in its order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waveform {
    /// Always 2.
    pub version: u32,
    /// The waveform's channels: 1 for the mono mix, else the audio's channels.
    pub channels: u32,
    /// The audio's sample rate, Hz.
    pub sample_rate: u32,
    /// Frames per pixel.
    pub samples_per_pixel: u32,
    /// 8 or 16.
    pub bits: u32,
    /// Pixels (min/max pairs per channel).
    pub length: u32,
    /// `[min, max]` per channel per pixel.
    pub data: Vec<i16>,
}

/// Renders the waveform of the input's first audio track.
pub fn render<R: Read + Send + Sync + 'static>(
    input: Input<R>,
    spec: &Spec,
) -> Result<Waveform, MediaError> {
    render_with(input, spec, MAX_SPOOL_BYTES)
}

/// [`render`] with a spool cap of `max_spool_bytes` for MP4-family files.
pub fn render_with<R: Read + Send + Sync + 'static>(
    input: Input<R>,
    spec: &Spec,
    max_spool_bytes: u64,
) -> Result<Waveform, MediaError> {
    let mut generator = Generator {
        spec: *spec,
        samples_per_pixel: 1,
        channels: 0,
        out_channels: 0,
        count: 0,
        min: Vec::new(),
        max: Vec::new(),
        data: Vec::new(),
        pixels: 0,
        ints: None,
        floats: None,
        frame: Vec::new(),
    };
    let decoded = decode(input, max_spool_bytes, &mut generator)?;
    generator.flush()?;
    let divisor = match spec.bits {
        Bits::Eight => 256,
        Bits::Sixteen => 1,
    };
    if divisor != 1 {
        for point in &mut generator.data {
            *point /= divisor;
        }
    }
    Ok(Waveform {
        version: 2,
        channels: u32::try_from(generator.out_channels).unwrap_or(u32::MAX),
        sample_rate: decoded.sample_rate,
        samples_per_pixel: generator.samples_per_pixel,
        bits: match spec.bits {
            Bits::Eight => 8,
            Bits::Sixteen => 16,
        },
        length: u32::try_from(generator.pixels).unwrap_or(u32::MAX),
        data: generator.data,
    })
}

/// Frames per pixel at this sample rate.
fn samples_per_pixel(resolution: Resolution, sample_rate: u32) -> u32 {
    match resolution {
        Resolution::SamplesPerPixel(n) => n.max(1),
        Resolution::PixelsPerSecond(pps) => {
            let spp = (f64::from(sample_rate) / f64::from(pps.max(1))).round();
            // In range: sample_rate / 1 at most.
            (spp as u32).max(1)
        }
    }
}

/// A float sample as audiowaveform's libmad path makes a 16-bit one of it: scaled by 32768,
/// rounded half up, clipped.
fn float_to_i16(s: f32) -> i32 {
    let scaled = (f64::from(s) * 32768.0 + 0.5).floor();
    if scaled.is_nan() {
        0
    } else {
        scaled.clamp(-32768.0, 32767.0) as i32
    }
}

struct Generator {
    spec: Spec,
    samples_per_pixel: u32,
    channels: usize,
    out_channels: usize,
    count: u32,
    min: Vec<i32>,
    max: Vec<i32>,
    data: Vec<i16>,
    pixels: u64,
    ints: Option<SampleBuffer<i16>>,
    floats: Option<SampleBuffer<f32>>,
    /// One frame, as 16-bit values.
    frame: Vec<i32>,
}

impl Generator {
    fn reset(&mut self) {
        self.min.fill(i32::from(i16::MAX));
        self.max.fill(i32::from(i16::MIN));
        self.count = 0;
    }

    fn too_large(&self, pixels: u64) -> MediaError {
        MediaError::TooLarge(format!(
            "a waveform of {pixels} pixels × {} channels is more than the {MAX_POINTS} points \
             allowed: ask for more samples per pixel",
            self.out_channels
        ))
    }

    fn push_pixel(&mut self) -> Result<(), MediaError> {
        let pixels = self.pixels.saturating_add(1);
        if pixels.saturating_mul(self.out_channels as u64) > MAX_POINTS {
            return Err(self.too_large(pixels));
        }
        for (min, max) in self.min.iter().zip(&self.max) {
            // The values are clipped to the i16 range on the way in.
            self.data.push(i16::try_from(*min).unwrap_or(i16::MIN));
            self.data.push(i16::try_from(*max).unwrap_or(i16::MAX));
        }
        self.pixels = pixels;
        self.reset();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), MediaError> {
        if self.count > 0 {
            self.push_pixel()?;
        }
        Ok(())
    }

    /// Adds one frame (`self.frame`, 16-bit values).
    fn add_frame(&mut self) -> Result<(), MediaError> {
        if self.out_channels == 1 {
            let sum: i32 = self.frame.iter().sum();
            // Integer division truncates toward zero, as in C++.
            let sample = sum / i32::try_from(self.channels).unwrap_or(i32::MAX).max(1);
            let sample = sample.clamp(i32::from(i16::MIN), i32::from(i16::MAX));
            if let (Some(min), Some(max)) = (self.min.first_mut(), self.max.first_mut()) {
                *min = (*min).min(sample);
                *max = (*max).max(sample);
            }
        } else {
            for ((sample, min), max) in self.frame.iter().zip(&mut self.min).zip(&mut self.max) {
                *min = (*min).min(*sample);
                *max = (*max).max(*sample);
            }
        }
        self.count += 1;
        if self.count >= self.samples_per_pixel {
            self.push_pixel()?;
        }
        Ok(())
    }
}

impl Sink for Generator {
    fn begin(&mut self, spec: &SignalSpec, n_frames: Option<u64>) -> Result<(), MediaError> {
        self.channels = spec.channels.count();
        self.out_channels = if self.spec.split_channels {
            self.channels
        } else {
            1
        };
        self.samples_per_pixel = samples_per_pixel(self.spec.resolution, spec.rate);
        self.min = vec![0; self.out_channels];
        self.max = vec![0; self.out_channels];
        self.frame = Vec::with_capacity(self.channels);
        self.reset();
        if let Some(frames) = n_frames {
            let pixels = frames.div_ceil(u64::from(self.samples_per_pixel));
            if pixels.saturating_mul(self.out_channels as u64) > MAX_POINTS {
                return Err(self.too_large(pixels));
            }
            // Not reserved from the header: a lying one would allocate without data.
        }
        Ok(())
    }

    fn write(&mut self, buf: AudioBufferRef<'_>) -> Result<(), MediaError> {
        let spec = *buf.spec();
        let capacity = buf.capacity();
        let needed = capacity.saturating_mul(spec.channels.count());
        let channels = self.channels.max(1);
        match buf {
            AudioBufferRef::F32(_) | AudioBufferRef::F64(_) => {
                let mut samples = match self.floats.take() {
                    Some(samples) if samples.capacity() >= needed => samples,
                    _ => SampleBuffer::new(capacity as u64, spec),
                };
                samples.copy_interleaved_ref(buf);
                for frame in samples.samples().chunks_exact(channels) {
                    self.frame.clear();
                    self.frame.extend(frame.iter().map(|s| float_to_i16(*s)));
                    self.add_frame()?;
                }
                self.floats = Some(samples);
            }
            _ => {
                let mut samples = match self.ints.take() {
                    Some(samples) if samples.capacity() >= needed => samples,
                    _ => SampleBuffer::new(capacity as u64, spec),
                };
                samples.copy_interleaved_ref(buf);
                for frame in samples.samples().chunks_exact(channels) {
                    self.frame.clear();
                    self.frame.extend(frame.iter().map(|s| i32::from(*s)));
                    self.add_frame()?;
                }
                self.ints = Some(samples);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution() {
        assert_eq!(
            samples_per_pixel(Resolution::PixelsPerSecond(100), 44_100),
            441
        );
        assert_eq!(
            samples_per_pixel(Resolution::PixelsPerSecond(7), 48_000),
            6857
        );
        assert_eq!(
            samples_per_pixel(Resolution::PixelsPerSecond(96_000), 48_000),
            1
        );
        assert_eq!(
            samples_per_pixel(Resolution::PixelsPerSecond(0), 48_000),
            48_000
        );
        assert_eq!(samples_per_pixel(Resolution::SamplesPerPixel(0), 48_000), 1);
    }

    #[test]
    fn floats_round_and_clip_like_libmad() {
        assert_eq!(float_to_i16(1.0), 32767);
        assert_eq!(float_to_i16(-1.0), -32768);
        assert_eq!(float_to_i16(-1.5), -32768);
        assert_eq!(float_to_i16(0.5 / 32768.0), 1);
        assert_eq!(float_to_i16(-0.5 / 32768.0), 0);
        assert_eq!(float_to_i16(f32::NAN), 0);
    }
}
