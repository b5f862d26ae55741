//! Container and track metadata: MP4 and QuickTime files written with the `mp4` crate and by
//! ffmpeg (fixtures), a hand-built WebM, WAV, MP3 and ADTS; truncated, corrupt and broken inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Cursor;

use common::{Format, breaking, data, input, input_unsized, stereo_1k};
use media::loudness::{Target, measure};
use media::probe::{Probe, Track, probe};
use media::{Input, MediaError};
use mp4::{
    AacConfig, AudioObjectType, AvcConfig, Bytes, ChannelConfig, MediaConfig, Mp4Config, Mp4Sample,
    Mp4Writer, SampleFreqIndex, TrackConfig, TrackType,
};

/// An MP4 written by the `mp4` crate (moov after mdat): optionally 50 frames of fake H.264
/// 640×360 at 25 fps (timescale 12800), and the AAC frames of the 3 s stereo 48 kHz fixture.
fn mp4_file(brand: &str, video: bool) -> Vec<u8> {
    let config = Mp4Config {
        major_brand: brand.parse().unwrap(),
        minor_version: 512,
        compatible_brands: vec!["isom".parse().unwrap(), "mp41".parse().unwrap()],
        timescale: 1000,
    };
    let mut writer = Mp4Writer::write_start(Cursor::new(Vec::new()), &config).unwrap();
    let mut audio_id = 1;
    if video {
        writer
            .add_track(&TrackConfig {
                track_type: TrackType::Video,
                timescale: 12_800,
                language: "und".to_owned(),
                media_conf: MediaConfig::AvcConfig(AvcConfig {
                    width: 640,
                    height: 360,
                    seq_param_set: vec![0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x00, 0xA0, 0x2F, 0xF9],
                    pic_param_set: vec![0x68, 0xCB, 0x83, 0xCB, 0x20],
                }),
            })
            .unwrap();
        audio_id = 2;
    }
    writer
        .add_track(&TrackConfig {
            track_type: TrackType::Audio,
            timescale: 48_000,
            language: "und".to_owned(),
            media_conf: MediaConfig::AacConfig(AacConfig {
                bitrate: 64_000,
                profile: AudioObjectType::AacLowComplexity,
                freq_index: SampleFreqIndex::Freq48000,
                chan_conf: ChannelConfig::Stereo,
            }),
        })
        .unwrap();
    if video {
        for i in 0..50u64 {
            writer
                .write_sample(
                    1,
                    &Mp4Sample {
                        start_time: i * 512,
                        duration: 512,
                        rendering_offset: 0,
                        is_sync: i % 25 == 0,
                        bytes: Bytes::from(vec![0, 0, 0, 4, 0x65, 0x88, 0x84, i as u8]),
                    },
                )
                .unwrap();
        }
    }
    let frames = common::adts_frames(&data("sine-1k-m20dbfs-48k-stereo.aac"));
    for (i, frame) in frames.into_iter().enumerate() {
        writer
            .write_sample(
                audio_id,
                &Mp4Sample {
                    start_time: i as u64 * 1024,
                    duration: 1024,
                    rendering_offset: 0,
                    is_sync: true,
                    bytes: Bytes::from(frame),
                },
            )
            .unwrap();
    }
    writer.write_end().unwrap();
    let mut file = writer.into_writer().into_inner();
    // The `mp4` crate writes the esds's SLConfigDescriptor with `predefined` 0; MP4 files
    // (ISO/IEC 14496-14) have 2, which symphonia insists on. It is the esds's last byte.
    let esds = file.windows(4).position(|w| w == b"esds").unwrap() - 4;
    let len = u32::from_be_bytes(file[esds..esds + 4].try_into().unwrap()) as usize;
    assert_eq!(file[esds + len - 1], 0);
    file[esds + len - 1] = 2;
    file
}

fn audio_of(p: &Probe) -> (&str, Option<u32>, Option<u32>, Option<u32>, Option<f64>) {
    p.tracks
        .iter()
        .find_map(|t| match t {
            Track::Audio {
                codec,
                sample_rate,
                channels,
                bits_per_sample,
                duration_seconds,
            } => Some((
                codec.as_str(),
                *sample_rate,
                *channels,
                *bits_per_sample,
                *duration_seconds,
            )),
            Track::Video { .. } => None,
        })
        .unwrap()
}

fn close(a: Option<f64>, b: f64, tolerance: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= tolerance)
}

#[test]
fn mp4_with_moov_at_the_end() {
    let file = mp4_file("isom", true);
    // The writer's layout: ftyp, mdat, moov.
    assert_eq!(&file[4..8], b"ftyp");
    let at = |kind: &[u8]| file.windows(4).position(|w| w == kind).unwrap();
    assert!(at(b"mdat") < at(b"moov"));
    let size = file.len() as u64;
    let p = probe(input(file.clone(), "video/mp4")).unwrap();
    println!("{p:?}");
    assert_eq!((p.kind, p.container.as_str()), ("video", "mp4"));
    assert!(
        close(p.duration_seconds, 3.0, 0.05),
        "{:?}",
        p.duration_seconds
    );
    assert_eq!(p.tracks.len(), 2);
    match &p.tracks[0] {
        Track::Video {
            codec,
            width,
            height,
            frame_rate,
            duration_seconds,
        } => {
            assert_eq!((codec.as_str(), *width, *height), ("h264", 640, 360));
            assert!(close(*frame_rate, 25.0, 1e-9), "{frame_rate:?}");
            assert!(close(*duration_seconds, 2.0, 1e-9));
        }
        other => panic!("{other:?}"),
    }
    let (codec, rate, channels, bits, duration) = audio_of(&p);
    assert_eq!(
        (codec, rate, channels, bits),
        ("aac", Some(48_000), Some(2), None)
    );
    assert!(close(duration, 3.0, 0.05), "{duration:?}");
    let expected_rate = (size as f64 * 8.0 / p.duration_seconds.unwrap()).round() as u64;
    assert_eq!(p.bit_rate, Some(expected_rate));
    // Without the size, it is counted (the stream was read to its end for the moov).
    let unsized_probe = probe(input_unsized(file.clone(), "video/mp4")).unwrap();
    assert_eq!(unsized_probe, p);
    // Its audio decodes past the video track.
    let l = measure(input(file, "video/mp4"), &Target::PODCAST).unwrap();
    assert!(
        close(l.integrated_lufs, -20.1, 0.2),
        "{:?}",
        l.integrated_lufs
    );
}

#[test]
fn m4a_and_its_loudness_through_the_spool() {
    let file = mp4_file("M4A ", false);
    let p = probe(input(file.clone(), "audio/mp4")).unwrap();
    assert_eq!((p.kind, p.container.as_str()), ("audio", "mp4"));
    assert_eq!(p.tracks.len(), 1);
    // The AAC frames of the ADTS fixture, now in an M4A with its moov at the end: the same
    // loudness as `ffmpeg -af ebur128` reads of the ADTS (−20.1 LUFS).
    let l = measure(input(file, "audio/mp4"), &Target::PODCAST).unwrap();
    println!("M4A: {:?}", l.integrated_lufs);
    assert!(
        close(l.integrated_lufs, -20.1, 0.2),
        "{:?}",
        l.integrated_lufs
    );
    assert_eq!((l.sample_rate, l.channels), (48_000, 2));
}

#[test]
fn quicktime_brand_is_mov() {
    let p = probe(input(mp4_file("qt  ", true), "video/quicktime")).unwrap();
    assert_eq!((p.kind, p.container.as_str()), ("video", "mov"));
    assert_eq!(p.tracks.len(), 2);
}

#[test]
fn ffmpeg_fixtures() {
    // ffprobe: mpeg4 64×48 25 fps 50 frames 2.0 s; aac 44.1 kHz mono 2.0 s.
    for (name, mime, container) in [
        ("tiny-moov-at-end.mp4", "video/mp4", "mp4"),
        ("tiny.mov", "video/quicktime", "mov"),
        // A wrong MIME type does not matter: the ftyp is sniffed.
        ("tiny.mov", "audio/mpeg", "mov"),
    ] {
        let p = probe(input(data(name), mime)).unwrap();
        println!("{name}: {p:?}");
        assert_eq!((p.kind, p.container.as_str()), ("video", container));
        assert!(
            close(p.duration_seconds, 2.0, 0.05),
            "{:?}",
            p.duration_seconds
        );
        assert_eq!(
            p.tracks[0],
            Track::Video {
                codec: "mpeg4".to_owned(),
                width: 64,
                height: 48,
                frame_rate: Some(25.0),
                duration_seconds: Some(2.0),
            }
        );
        let (codec, rate, channels, _, duration) = audio_of(&p);
        assert_eq!((codec, rate, channels), ("aac", Some(44_100), Some(1)));
        assert!(close(duration, 2.0, 0.05), "{duration:?}");
    }
}

/// An EBML element: ID bytes, then the size as a 1-byte (small) or 8-byte vint.
fn el(id: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    if payload.len() < 127 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x01);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes()[1..]);
    }
    out.extend_from_slice(payload);
    out
}

fn webm_file() -> Vec<u8> {
    let header = el(
        &[0x1A, 0x45, 0xDF, 0xA3],
        &[
            el(&[0x42, 0x86], &[1]),
            el(&[0x42, 0x82], b"webm"),
            el(&[0x42, 0x87], &[4]),
        ]
        .concat(),
    );
    let info = el(
        &[0x15, 0x49, 0xA9, 0x66],
        &[
            el(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]),
            el(&[0x44, 0x89], &2500.0f64.to_be_bytes()),
            el(&[0x4D, 0x80], b"hand-made"),
        ]
        .concat(),
    );
    let video = el(
        &[0xAE],
        &[
            el(&[0xD7], &[1]),
            el(&[0x83], &[1]),
            el(&[0x86], b"V_VP9"),
            el(&[0x23, 0xE3, 0x83], &33_333_333u32.to_be_bytes()),
            el(
                &[0xE0],
                &[el(&[0xB0], &[0x02, 0x80]), el(&[0xBA], &[0x01, 0x68])].concat(),
            ),
        ]
        .concat(),
    );
    let audio = el(
        &[0xAE],
        &[
            el(&[0xD7], &[2]),
            el(&[0x83], &[2]),
            el(&[0x86], b"A_OPUS"),
            el(&[0x63, 0xA2], &[0x4F; 19]),
            el(
                &[0xE1],
                &[el(&[0xB5], &48_000.0f32.to_be_bytes()), el(&[0x9F], &[2])].concat(),
            ),
        ]
        .concat(),
    );
    let tracks = el(&[0x16, 0x54, 0xAE, 0x6B], &[video, audio].concat());
    let void = el(&[0xEC], &[0; 300]);
    let cluster_junk = vec![
        0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xE7, 0x81, 0x00,
        0xA3, 0x84, 0x81, 0, 0, 0x80,
    ];
    let mut out = header;
    // The Segment, of unknown size, as live WebM writers make it.
    out.extend_from_slice(&[
        0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    out.extend(void);
    out.extend(info);
    out.extend(tracks);
    out.extend(cluster_junk);
    out
}

#[test]
fn webm() {
    let file = webm_file();
    let size = file.len();
    let p = probe(input(file.clone(), "video/webm")).unwrap();
    println!("{p:?}");
    assert_eq!((p.kind, p.container.as_str()), ("video", "webm"));
    assert!(close(p.duration_seconds, 2.5, 1e-9));
    assert_eq!(p.bit_rate, Some((size as f64 * 8.0 / 2.5).round() as u64));
    match &p.tracks[0] {
        Track::Video {
            codec,
            width,
            height,
            frame_rate,
            duration_seconds,
        } => {
            assert_eq!((codec.as_str(), *width, *height), ("vp9", 640, 360));
            assert!(close(*frame_rate, 30.0, 1e-6), "{frame_rate:?}");
            assert_eq!(*duration_seconds, None);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(audio_of(&p), ("opus", Some(48_000), Some(2), None, None));
    // Sniffed whatever the MIME type says.
    assert_eq!(
        probe(input(file.clone(), "application/octet-stream")).unwrap(),
        p
    );
    // Its Opus audio cannot be decoded (symphonia 0.5 has no Opus decoder): unreadable, not a
    // broken stream, though the decoder gave up before the end of the stream.
    let err = measure(input(file, "video/webm"), &Target::PODCAST).unwrap_err();
    assert!(matches!(err, MediaError::Unreadable(_)), "{err:?}");
}

#[test]
fn wav_file() {
    let file = common::wav(2, 48_000, Format::Int16, &stereo_1k(&[(-20.0, 1.5)]));
    let size = file.len() as u64;
    let p = probe(input(file, "audio/wav")).unwrap();
    assert_eq!((p.kind, p.container.as_str()), ("audio", "wav"));
    assert_eq!(p.duration_seconds, Some(1.5));
    assert_eq!(p.bit_rate, Some((size as f64 * 8.0 / 1.5).round() as u64));
    assert_eq!(
        p.tracks,
        [Track::Audio {
            codec: "pcm_s16le".to_owned(),
            sample_rate: Some(48_000),
            channels: Some(2),
            bits_per_sample: Some(16),
            duration_seconds: Some(1.5),
        }]
    );
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["tracks"][0]["type"], "audio");
    assert_eq!(json["tracks"][0]["codec"], "pcm_s16le");
    assert_eq!(json["kind"], "audio");
}

#[test]
fn mp3_and_adts() {
    for (name, mime, container) in [
        ("sine-1k-m20dbfs-48k-stereo.mp3", "audio/mpeg", "mp3"),
        ("sine-1k-m20dbfs-48k-stereo.aac", "audio/aac", "aac"),
    ] {
        let file = data(name);
        let p = probe(input(file.clone(), mime)).unwrap();
        println!("{name}: {p:?}");
        assert_eq!((p.kind, p.container.as_str()), ("audio", container));
        let (codec, rate, channels, bits, duration) = audio_of(&p);
        assert_eq!(
            (codec, rate, channels, bits),
            (container, Some(48_000), Some(2), None)
        );
        assert!(close(duration, 3.0, 0.1), "{duration:?}");
        assert!(
            p.bit_rate.is_some_and(|b| (55_000..75_000).contains(&b)),
            "{:?}",
            p.bit_rate
        );
    }
}

#[test]
fn video_track_shapes_in_json() {
    let p = probe(input(webm_file(), "video/webm")).unwrap();
    let json = serde_json::to_string(&p.tracks[0]).unwrap();
    assert!(
        json.starts_with(
            r#"{"type":"video","codec":"vp9","width":640,"height":360,"frame_rate":30.0000003"#
        ),
        "{json}"
    );
}

#[test]
fn truncated_and_corrupt_inputs_are_unreadable_never_a_panic() {
    let mp4 = mp4_file("isom", true);
    let webm = webm_file();
    let wav = common::wav(1, 8000, Format::Int16, &[0.0; 100]);
    let cuts = |len: usize| (0..len).step_by(13).chain(len.saturating_sub(40)..len);
    for (name, file, mime) in [
        ("mp4", &mp4, "video/mp4"),
        ("webm", &webm, "video/webm"),
        ("wav", &wav, "audio/wav"),
    ] {
        for cut in cuts(file.len()) {
            match probe(input_unsized(file[..cut].to_vec(), mime)) {
                Ok(_) => assert!(
                    name == "webm" || (name == "wav" && cut >= 44),
                    "{name} cut at {cut}"
                ),
                Err(MediaError::Unreadable(_)) => {}
                Err(e) => panic!("{name} cut at {cut}: {e:?}"),
            }
        }
    }
    // Every byte of the moov flipped: a result or Unreadable.
    let moov_at = mp4.len() - mp4.windows(4).rev().position(|w| w == b"moov").unwrap() - 4 - 4;
    for i in moov_at..mp4.len() {
        for flip in [0xFF, 0x80, 0x01] {
            let mut bad = mp4.clone();
            bad[i] ^= flip;
            if let Err(e) = probe(input_unsized(bad, "video/mp4")) {
                assert!(
                    matches!(e, MediaError::Unreadable(_) | MediaError::TooLarge(_)),
                    "{e:?}"
                );
            }
        }
    }
    for i in 0..webm.len() {
        let mut bad = webm.clone();
        bad[i] ^= 0xFF;
        if let Err(e) = probe(input_unsized(bad, "video/webm")) {
            assert!(
                matches!(e, MediaError::Unreadable(_) | MediaError::TooLarge(_)),
                "{e:?}"
            );
        }
    }
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    for mime in [
        "audio/wav",
        "audio/mpeg",
        "video/mp4",
        "video/webm",
        "audio/ogg",
    ] {
        let err = probe(input_unsized(noise.clone(), mime)).unwrap_err();
        assert!(matches!(err, MediaError::Unreadable(_)), "{mime}: {err:?}");
    }
}

#[test]
fn a_huge_moov_is_too_large() {
    let mut file = b"\x00\x00\x00\x10ftypisom\x00\x00\x02\x00".to_vec();
    file.extend_from_slice(&(media::probe::MAX_MOOV_BYTES as u32 + 9).to_be_bytes());
    file.extend_from_slice(b"moov");
    let err = probe(input_unsized(file, "video/mp4")).unwrap_err();
    assert!(matches!(err, MediaError::TooLarge(_)), "{err:?}");
}

#[test]
fn a_stream_that_breaks_is_a_read_error() {
    let mp4 = mp4_file("isom", true);
    let webm = webm_file();
    let wav = common::wav(2, 48_000, Format::Int16, &stereo_1k(&[(-20.0, 1.0)]));
    let mp3 = data("sine-1k-m20dbfs-48k-stereo.mp3");
    for (name, file, mime, at) in [
        ("mp4 in mdat", mp4.clone(), "video/mp4", 2000),
        (
            "mp4 in moov",
            mp4.clone(),
            "video/mp4",
            mp4.len() as u64 - 100,
        ),
        ("mp4 at start", mp4, "video/mp4", 0),
        ("webm", webm, "video/webm", 60),
        ("wav header", wav, "audio/wav", 30),
        ("mp3", mp3, "audio/mpeg", 200),
    ] {
        match probe(breaking(file, mime, at)) {
            Err(MediaError::Read(e)) => {
                assert!(e.to_string().contains("connection reset"), "{name}: {e}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn a_stream_short_of_its_size_is_a_read_error() {
    let mp4 = mp4_file("isom", true);
    let size = mp4.len() as u64;
    let cut = mp4[..mp4.len() - 50].to_vec();
    let err = probe(Input::new(
        common::Stream(Cursor::new(cut)),
        "video/mp4",
        Some(size),
    ))
    .unwrap_err();
    assert!(matches!(err, MediaError::Read(_)), "{err:?}");
}
