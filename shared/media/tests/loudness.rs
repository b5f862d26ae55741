//! Loudness against the EBU test signals (Tech 3341 v4 minimum requirements, Tech 3342 LRA,
//! Tech 3341 true peak), generated here as 24-bit 48 kHz WAV files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Format, breaking, data, input, input_unsized, sine_into, stereo_1k, wav};
use media::loudness::{Loudness, Target, measure, measure_with};
use media::{Input, MediaError};

fn measure_wav(samples: &[f64], channels: u16, format: Format) -> Loudness {
    let file = wav(channels, 48_000, format, samples);
    measure(input(file, "audio/wav"), &Target::EBU_R128).unwrap()
}

fn stereo(segments: &[(f64, f64)]) -> Loudness {
    measure_wav(&stereo_1k(segments), 2, Format::Int24)
}

fn assert_close(what: &str, measured: f64, expected: f64, below: f64, above: f64) {
    println!("{what}: {measured:.3} (expected {expected})");
    assert!(
        measured >= expected - below && measured <= expected + above,
        "{what}: measured {measured}, expected {expected} -{below}/+{above}"
    );
}

#[test]
fn tech_3341_case_1_sine_at_minus_23() {
    let l = stereo(&[(-23.0, 20.0)]);
    assert_close("3341-1 I", l.integrated_lufs.unwrap(), -23.0, 0.1, 0.1);
    assert_eq!((l.sample_rate, l.channels), (48_000, 2));
    assert!((l.duration_seconds - 20.0).abs() < 1e-9);
    assert!(l.verdict.passed, "{:?}", l.verdict);
}

#[test]
fn tech_3341_case_2_sine_at_minus_33() {
    let l = stereo(&[(-33.0, 20.0)]);
    assert_close("3341-2 I", l.integrated_lufs.unwrap(), -33.0, 0.1, 0.1);
}

#[test]
fn tech_3341_case_3_relative_gate() {
    let l = stereo(&[(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)]);
    assert_close("3341-3 I", l.integrated_lufs.unwrap(), -23.0, 0.1, 0.1);
}

#[test]
fn tech_3341_case_4_absolute_and_relative_gates() {
    let l = stereo(&[
        (-72.0, 10.0),
        (-36.0, 10.0),
        (-23.0, 60.0),
        (-36.0, 10.0),
        (-72.0, 10.0),
    ]);
    assert_close("3341-4 I", l.integrated_lufs.unwrap(), -23.0, 0.1, 0.1);
}

#[test]
fn tech_3341_case_5_gating_blocks() {
    let l = stereo(&[(-26.0, 20.0), (-20.0, 20.1), (-26.0, 19.9)]);
    assert_close("3341-5 I", l.integrated_lufs.unwrap(), -23.0, 0.1, 0.1);
}

#[test]
fn tech_3342_cases_1_and_2_loudness_range() {
    let l = stereo(&[(-20.0, 20.0), (-30.0, 20.0)]);
    assert_close("3342-1 LRA", l.loudness_range_lu.unwrap(), 10.0, 1.0, 1.0);
    let l = stereo(&[(-20.0, 20.0), (-15.0, 20.0)]);
    assert_close("3342-2 LRA", l.loudness_range_lu.unwrap(), 5.0, 1.0, 1.0);
}

/// Tech 3341 cases 15–19: a sine at a fraction of the sample rate, amplitude and start phase
/// placing the sample peaks below the true peak.
#[test]
fn tech_3341_cases_15_to_19_true_peak() {
    for (case, divisor, amplitude, phase, expected_tp) in [
        (15, 4.0, 0.50, 0.0, -6.0),
        (16, 4.0, 0.50, 45.0, -6.0),
        (17, 6.0, 0.50, 60.0, -6.0),
        (18, 8.0, 0.50, 67.5, -6.0),
        (19, 4.0, 1.41, 45.0, 3.0),
    ] {
        let mut samples = Vec::new();
        sine_into(
            &mut samples,
            &mut 0,
            48_000,
            2,
            48_000.0 / divisor,
            amplitude,
            phase,
            2.0,
        );
        // A 10 ms raised-cosine fade in and out: a signal that starts with a step rings in the
        // true-peak interpolator (up to +0.35 dB at fs/6).
        let fade = 480;
        let frames = samples.len() / 2;
        for i in 0..fade {
            let g = 0.5 - 0.5 * (std::f64::consts::PI * i as f64 / fade as f64).cos();
            for c in 0..2 {
                samples[2 * i + c] *= g;
                samples[2 * (frames - 1 - i) + c] *= g;
            }
        }
        let l = measure_wav(&samples, 2, Format::Int24);
        assert_close(
            &format!("3341-{case} true peak"),
            l.true_peak_dbtp.unwrap(),
            expected_tp,
            0.4,
            0.2,
        );
        // The sample peak is exactly the largest quantized sample.
        let largest = samples
            .iter()
            .map(|s| {
                ((s * 8_388_608.0).round().clamp(-8_388_608.0, 8_388_607.0) / 8_388_608.0).abs()
            })
            .fold(0.0, f64::max);
        let sample_peak = l.sample_peak_dbfs.unwrap();
        println!("3341-{case} sample peak: {sample_peak:.3}");
        assert!(
            (sample_peak - 20.0 * largest.log10()).abs() < 1e-4,
            "case {case}: sample peak {sample_peak} vs {}",
            20.0 * largest.log10()
        );
        assert!(sample_peak < l.true_peak_dbtp.unwrap() + 0.01);
    }
}

#[test]
fn sample_formats_read_alike() {
    let samples = stereo_1k(&[(-23.0, 5.0)]);
    let lufs: Vec<f64> = [Format::Int16, Format::Int24, Format::Float32]
        .into_iter()
        .map(|f| measure_wav(&samples, 2, f).integrated_lufs.unwrap())
        .collect();
    println!("16-bit, 24-bit, float: {lufs:?}");
    for l in &lufs {
        assert!((l - -23.0).abs() < 0.1, "{lufs:?}");
    }
}

#[test]
fn mono_is_measured_as_one_channel() {
    let mut samples = Vec::new();
    sine_into(
        &mut samples,
        &mut 0,
        48_000,
        1,
        1000.0,
        10f64.powf(-23.0 / 20.0),
        0.0,
        10.0,
    );
    let l = measure_wav(&samples, 1, Format::Int16);
    // One channel of a −23 dBFS sine is 3 dB below two of them (BS.1770-4), not dual mono.
    assert_close("mono I", l.integrated_lufs.unwrap(), -26.0, 0.1, 0.1);
    assert_eq!(l.channels, 1);
}

#[test]
fn surround_channels_weigh_more_and_the_lfe_nothing() {
    let level = 10f64.powf(-23.0 / 20.0);
    let only = |channel: usize| {
        let mut tone = Vec::new();
        sine_into(&mut tone, &mut 0, 48_000, 1, 1000.0, level, 0.0, 10.0);
        let samples: Vec<f64> = tone
            .iter()
            .flat_map(|s| (0..6).map(move |c| if c == channel { *s } else { 0.0 }))
            .collect();
        measure_wav(&samples, 6, Format::Int16)
    };
    let left = only(0).integrated_lufs.unwrap();
    let left_surround = only(4).integrated_lufs.unwrap();
    println!("5.1: L {left:.3}, Ls {left_surround:.3}");
    assert_close("5.1 L", left, -26.0, 0.1, 0.1);
    assert_close(
        "5.1 Ls - L",
        left_surround - left,
        10.0 * 1.41f64.log10(),
        0.05,
        0.05,
    );
    let lfe = only(3);
    assert_eq!(lfe.integrated_lufs, None);
    assert!(lfe.sample_peak_dbfs.is_some());
}

#[test]
fn verdict_of_a_minus_16_lufs_signal() {
    let samples = stereo_1k(&[(-16.0, 10.0)]);
    let file = wav(2, 48_000, Format::Int24, &samples);
    let podcast = measure(input(file.clone(), "audio/x-wav"), &Target::PODCAST).unwrap();
    println!("{podcast:?}");
    assert!(podcast.verdict.passed, "{:?}", podcast.verdict);
    assert!(podcast.verdict.problems.is_empty());
    let ebu = measure(input(file, "audio/wav"), &Target::EBU_R128).unwrap();
    assert!(!ebu.verdict.passed);
    assert_eq!(
        ebu.verdict.problems,
        ["integrated loudness -16.0 LUFS is above the target -23 LUFS ± 0.5 LU"]
    );
}

#[test]
fn verdict_of_a_hot_quiet_signal() {
    // −20 dBFS of sine, with a few samples at −0.1 dBFS: too quiet and peaking too high.
    let mut samples = stereo_1k(&[(-20.0, 10.0)]);
    for s in samples.iter_mut().skip(48_000).step_by(96_000).take(4) {
        *s = 0.99;
    }
    let l = measure(
        input(wav(2, 48_000, Format::Int24, &samples), "audio/wav"),
        &Target::PODCAST,
    )
    .unwrap();
    assert!(!l.verdict.passed);
    assert_eq!(l.verdict.problems.len(), 2, "{:?}", l.verdict.problems);
    assert!(
        l.verdict.problems[0]
            .starts_with("integrated loudness -20.0 LUFS is below the target -16 LUFS ± 1 LU")
    );
    assert!(
        l.verdict.problems[1].starts_with("true peak"),
        "{:?}",
        l.verdict.problems
    );
    assert!(l.verdict.problems[1].ends_with("dBTP is above the maximum -1 dBTP"));
}

#[test]
fn silence_cannot_meet_a_target() {
    let l = measure_wav(&vec![0.0; 48_000 * 2 * 5], 2, Format::Int16);
    assert_eq!(l.integrated_lufs, None);
    assert_eq!(l.loudness_range_lu, None);
    assert_eq!(l.sample_peak_dbfs, None);
    assert_eq!(l.true_peak_dbtp, None);
    assert!((l.duration_seconds - 5.0).abs() < 1e-9);
    assert!(!l.verdict.passed);
    assert_eq!(l.verdict.problems.len(), 1);
    assert!(l.verdict.problems[0].starts_with("the file is silent"));
}

#[test]
fn rounded_and_serialized() {
    let l = stereo(&[(-23.0, 4.0)]).rounded();
    let json = serde_json::to_value(&l).unwrap();
    // −22.993… measured.
    assert_eq!(json["integrated_lufs"].as_f64().unwrap(), -22.99);
    assert_eq!(json["sample_rate"], 48_000);
    assert_eq!(json["verdict"]["passed"], true);
    assert_eq!(json["verdict"]["target"]["integrated_lufs"], -23.0);
    assert_eq!(json["verdict"]["target"]["tolerance_lu"], 0.5);
    assert_eq!(json["verdict"]["target"]["max_true_peak_dbtp"], -1.0);
    let tp = l.true_peak_dbtp.unwrap();
    assert_eq!((tp * 100.0).round() / 100.0, tp);
}

#[test]
fn corrupt_inputs_are_unreadable() {
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let full = wav(2, 48_000, Format::Int16, &stereo_1k(&[(-23.0, 1.0)]));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("noise", noise.clone(), "audio/wav"),
        ("noise as mp3", noise.clone(), "audio/mpeg"),
        ("noise as mp4", noise, "audio/mp4"),
        ("empty", Vec::new(), "audio/wav"),
        ("header only", full[..30].to_vec(), "audio/wav"),
        (
            "truncated mp4",
            data("tiny-moov-at-end.mp4")[..9000].to_vec(),
            "video/mp4",
        ),
    ];
    for (what, bytes, mime) in cases {
        // Without a size: a short file is a corrupt one, not a broken stream.
        let err = measure(input_unsized(bytes, mime), &Target::PODCAST).unwrap_err();
        println!("{what}: {err}");
        assert!(matches!(err, MediaError::Unreadable(_)), "{what}: {err:?}");
    }
}

#[test]
fn a_stream_that_breaks_is_a_read_error() {
    let file = wav(2, 48_000, Format::Int16, &stereo_1k(&[(-23.0, 2.0)]));
    for ok_bytes in [0, 20, 100_000] {
        let err = measure(
            breaking(file.clone(), "audio/wav", ok_bytes),
            &Target::PODCAST,
        )
        .unwrap_err();
        println!("after {ok_bytes} bytes: {err}");
        match err {
            MediaError::Read(e) => assert!(e.to_string().contains("connection reset")),
            other => panic!("after {ok_bytes} bytes: {other:?}"),
        }
    }
    let mp4 = data("tiny-moov-at-end.mp4");
    let err = measure(breaking(mp4, "video/mp4", 5000), &Target::PODCAST).unwrap_err();
    assert!(matches!(err, MediaError::Read(_)), "{err:?}");
}

#[test]
fn a_stream_short_of_its_size_is_a_read_error() {
    let file = wav(2, 48_000, Format::Int16, &stereo_1k(&[(-23.0, 2.0)]));
    let size = file.len() as u64;
    let cut = file[..file.len() / 2].to_vec();
    let err = measure(
        Input::new(
            common::Stream(std::io::Cursor::new(cut)),
            "audio/wav",
            Some(size),
        ),
        &Target::PODCAST,
    )
    .unwrap_err();
    assert!(matches!(err, MediaError::Read(_)), "{err:?}");
}

#[test]
fn mp4_with_moov_at_the_end_is_spooled_and_decoded() {
    // ffmpeg: a 2 s mono AAC 44.1 kHz 1 kHz sine at 1/8 full scale, moov after mdat;
    // `ffmpeg -af ebur128` reads I −21.2 LUFS, sample peak −14.1 dBFS.
    let l = measure(
        input(data("tiny-moov-at-end.mp4"), "video/mp4"),
        &Target::PODCAST,
    )
    .unwrap();
    println!("{l:?}");
    assert_close("mp4 I", l.integrated_lufs.unwrap(), -21.2, 0.2, 0.2);
    assert_eq!((l.sample_rate, l.channels), (44_100, 1));
    assert!(
        (l.duration_seconds - 2.0).abs() < 0.1,
        "{}",
        l.duration_seconds
    );
    // The same through the QuickTime container, its MIME type unknown (sniffed).
    let l = measure(
        input(data("tiny.mov"), "application/octet-stream"),
        &Target::PODCAST,
    )
    .unwrap();
    assert_close("mov I", l.integrated_lufs.unwrap(), -21.2, 0.2, 0.2);
}

#[test]
fn the_spool_is_capped() {
    let err = measure_with(
        input_unsized(data("tiny-moov-at-end.mp4"), "video/mp4"),
        &Target::PODCAST,
        4096,
    )
    .unwrap_err();
    assert!(matches!(err, MediaError::TooLarge(_)), "{err:?}");
    println!("{err}");
}

#[test]
fn lossy_fixtures_read_as_ffmpeg_reads_them() {
    // 3 s stereo 48 kHz 1 kHz sine at −20 dBFS, 64 kb/s; `ffmpeg -af ebur128` reads
    // AAC (ADTS) I −20.1 LUFS, MP3 I −20.5 LUFS.
    for (name, mime, expected) in [
        ("sine-1k-m20dbfs-48k-stereo.aac", "audio/aac", -20.1),
        ("sine-1k-m20dbfs-48k-stereo.mp3", "audio/mpeg", -20.5),
    ] {
        let l = measure(input(data(name), mime), &Target::PODCAST).unwrap();
        assert_close(name, l.integrated_lufs.unwrap(), expected, 0.2, 0.2);
        assert_eq!((l.sample_rate, l.channels), (48_000, 2));
    }
}

#[test]
fn a_rate_or_channel_count_beyond_the_meters_is_refused_before_it_allocates() {
    // 384 kHz stereo, and 16 channels at 48 kHz: the meter would keep 3 s of each.
    for (channels, rate) in [(2u16, 384_000u32), (16, 48_000)] {
        let file = wav(
            channels,
            rate,
            Format::Int16,
            &vec![0.1; usize::from(channels) * 64],
        );
        let err = measure(input(file, "audio/wav"), &Target::PODCAST).unwrap_err();
        assert!(
            matches!(err, MediaError::TooLarge(_)),
            "{channels} × {rate}: {err:?}"
        );
    }
    // 7.1 at 192 kHz is measured.
    let file = wav(8, 192_000, Format::Int16, &vec![0.1; 8 * 192_000]);
    assert!(measure(input(file, "audio/wav"), &Target::PODCAST).is_ok());
}
