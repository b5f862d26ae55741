//! Waveforms of known signals, in audiowaveform's arithmetic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Format, data, input, wav};
use media::MediaError;
use media::waveform::{Bits, Resolution, Spec, Waveform, render};

fn spec(spp: u32, bits: Bits, split: bool) -> Spec {
    Spec {
        resolution: Resolution::SamplesPerPixel(spp),
        bits,
        split_channels: split,
    }
}

fn render_wav(channels: u16, format: Format, samples: &[f64], spec: &Spec) -> Waveform {
    render(
        input(wav(channels, 48_000, format, samples), "audio/wav"),
        spec,
    )
    .unwrap()
}

/// A full-scale square wave, `period` frames, `frames` long, in `channels` channels.
fn square(frames: usize, period: usize, channels: usize) -> Vec<f64> {
    (0..frames)
        .flat_map(|i| {
            let s = if i % period < period / 2 { 1.0 } else { -1.0 };
            std::iter::repeat_n(s, channels)
        })
        .collect()
}

#[test]
fn a_full_scale_square_wave_spans_the_range() {
    let samples = square(4800, 100, 2);
    let w = render_wav(2, Format::Int16, &samples, &spec(480, Bits::Sixteen, false));
    assert_eq!(
        (
            w.version,
            w.channels,
            w.sample_rate,
            w.samples_per_pixel,
            w.bits,
            w.length
        ),
        (2, 1, 48_000, 480, 16, 10)
    );
    assert_eq!(w.data.len(), 20);
    assert!(
        w.data.chunks(2).all(|p| p == [-32768, 32767]),
        "{:?}",
        w.data
    );
    let w = render_wav(2, Format::Int16, &samples, &spec(480, Bits::Eight, true));
    assert_eq!((w.channels, w.bits, w.length), (2, 8, 10));
    assert!(w.data.chunks(2).all(|p| p == [-128, 127]), "{:?}", w.data);
}

#[test]
fn silence_is_zeros_and_the_last_partial_pixel_is_kept() {
    let w = render_wav(
        1,
        Format::Int16,
        &vec![0.0; 1000],
        &spec(256, Bits::Sixteen, false),
    );
    assert_eq!(w.length, 4); // ceil(1000 / 256)
    assert_eq!(w.data, vec![0; 8]);
    let w = render_wav(
        1,
        Format::Int16,
        &vec![0.0; 1024],
        &spec(256, Bits::Sixteen, false),
    );
    assert_eq!(w.length, 4);
    let w = render_wav(
        1,
        Format::Int16,
        &vec![0.0; 1025],
        &spec(256, Bits::Sixteen, false),
    );
    assert_eq!(w.length, 5);
}

#[test]
fn the_mono_mix_is_the_truncated_integer_mean() {
    // Frames: (1000, 3001), (-1001, -2000), then a pixel of (-3, 2).
    let to_f = |v: i32| f64::from(v) / 32768.0;
    let samples = [1000, 3001, -1001, -2000, -3, 2, -3, 2].map(to_f);
    let w = render_wav(2, Format::Int16, &samples, &spec(2, Bits::Sixteen, false));
    // (1000 + 3001) / 2 = 2000, (-1001 - 2000) / 2 = -1500 (toward zero), (-3 + 2) / 2 = 0.
    assert_eq!(w.data, [-1500, 2000, 0, 0]);
    let w = render_wav(2, Format::Int16, &samples, &spec(2, Bits::Sixteen, true));
    assert_eq!(w.channels, 2);
    assert_eq!(w.data, [-1001, 1000, -2000, 3001, -3, -3, 2, 2]);
}

#[test]
fn eight_bits_divide_by_256_toward_zero() {
    let to_f = |v: i32| f64::from(v) / 32768.0;
    let samples = [-255, 255, -256, 256, -32768, 32767, -257, 511].map(to_f);
    let w = render_wav(1, Format::Int16, &samples, &spec(2, Bits::Eight, false));
    assert_eq!(w.data, [-255 / 256, 255 / 256, -1, 1, -128, 127, -1, 1]);
    assert_eq!(w.data, [0, 0, -1, 1, -128, 127, -1, 1]);
}

#[test]
fn sample_formats_convert_as_audiowaveform_reads_them() {
    // 24-bit PCM keeps its top 16 bits (libsndfile); a float is scaled by 32768 and rounded.
    let samples = [8_388_607.0, -8_388_608.0, 256.0, -1.0, 255.0, -256.0].map(|v| v / 8_388_608.0);
    let w = render_wav(1, Format::Int24, &samples, &spec(1, Bits::Sixteen, false));
    assert_eq!(
        w.data,
        [32767, 32767, -32768, -32768, 1, 1, -1, -1, 0, 0, -1, -1]
    );
    let samples = [0.5, -0.5, 1.0, -1.0, 0.25 / 32768.0, 0.75 / 32768.0];
    let w = render_wav(1, Format::Float32, &samples, &spec(1, Bits::Sixteen, false));
    assert_eq!(
        w.data,
        [
            16384, 16384, -16384, -16384, 32767, 32767, -32768, -32768, 0, 0, 1, 1
        ]
    );
}

#[test]
fn pixels_per_second() {
    let frames = 48_000 + 100;
    let w = render_wav(
        1,
        Format::Int16,
        &vec![0.1; frames],
        &Spec {
            resolution: Resolution::PixelsPerSecond(100),
            bits: Bits::Eight,
            split_channels: false,
        },
    );
    assert_eq!(w.samples_per_pixel, 480);
    assert_eq!(w.length, 101); // ceil(48100 / 480)
    assert!(
        w.data.chunks(2).all(|p| p == [12, 12]),
        "{:?}",
        &w.data[..4]
    ); // 3277 / 256
}

#[test]
fn serializes_in_audiowaveform_key_order() {
    let to_f = |v: i32| f64::from(v) / 32768.0;
    let samples = [-100, 300, 5, 7, 32767].map(to_f);
    let w = render_wav(1, Format::Int16, &samples, &spec(2, Bits::Sixteen, false));
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(
        json,
        r#"{"version":2,"channels":1,"sample_rate":48000,"samples_per_pixel":2,"bits":16,"length":3,"data":[-100,300,5,7,32767,32767]}"#
    );
    let back: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(back["data"][5], 32767);
    assert_eq!(back["length"], 3);
}

#[test]
fn mp4_with_moov_at_the_end() {
    // 2 s of 44.1 kHz mono AAC: 88 packets of 1024 frames.
    let w = render(
        input(data("tiny-moov-at-end.mp4"), "video/mp4"),
        &Spec {
            resolution: Resolution::PixelsPerSecond(10),
            bits: Bits::Eight,
            split_channels: true,
        },
    )
    .unwrap();
    assert_eq!(
        (w.channels, w.sample_rate, w.samples_per_pixel),
        (1, 44_100, 4410)
    );
    assert!((20..=21).contains(&w.length), "{}", w.length);
    // 1/8 of full scale: 16-bit peaks near 4096, 8-bit near 16 (past the encoder's start).
    let (min, max) = (w.data[20], w.data[21]);
    assert!(
        (14..=18).contains(&max) && (-18..=-14).contains(&min),
        "{min} {max}"
    );
}

#[test]
fn the_waveform_length_is_capped() {
    // A WAV header announcing 3 hours of 48 kHz stereo: refused before decoding it all.
    let mut file = wav(2, 48_000, Format::Int16, &vec![0.0; 2000]);
    let data_len: u32 = 48_000 * 3 * 3600 * 4;
    let at = file.len() - 2000 * 2 - 4;
    file[at..at + 4].copy_from_slice(&data_len.to_le_bytes());
    file[4..8].copy_from_slice(&(data_len + 36).to_le_bytes());
    let err = render(
        media::Input::new(
            common::Stream(std::io::Cursor::new(file)),
            "audio/wav",
            None,
        ),
        &spec(1, Bits::Sixteen, true),
    )
    .unwrap_err();
    assert!(matches!(err, MediaError::TooLarge(_)), "{err:?}");
}
