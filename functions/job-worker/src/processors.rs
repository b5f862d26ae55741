//! The job types: one trait, one registry. Each reads its file from S3 as a stream and reports
//! progress through checkpoints, where a cancel stops it.

use std::future::Future;
use std::io::Cursor;

use aws_lc_rs::digest;
use domain::job::JobFailure;
use domain::store::file::FileMetadata;
use domain::store::object::{ByteChunks, ObjectReader};
use domain::{ContentType, EpisodeFile, JobParams, JobType, Sha256};
use serde_json::{Value, json};

/// Files at least this large report progress (every quarter); smaller ones are done first.
const PROGRESS_FROM: u64 = 4 * 1024 * 1024;
/// Largest file the media probe and the thumbnailer read into memory.
const MAX_IN_MEMORY: u64 = 64 * 1024 * 1024;

/// Where a job reports progress; `Err` means stop now (cancelled, or the job was taken over).
pub trait Checkpoint {
    fn reached(&mut self, percent: u8) -> impl Future<Output = Result<(), JobFailure>> + Send;
}

/// What a processor produces.
#[derive(Debug)]
pub struct Outcome {
    pub result: Value,
    /// Recorded on the input file: (attribute, value, SHA-256 if computed).
    pub file_metadata: Option<(FileMetadata, Value, Option<Sha256>)>,
    /// A new file of the episode (a thumbnail): bytes and content type.
    pub derived: Option<(Vec<u8>, ContentType)>,
}

pub trait Processor {
    fn run(
        &self,
        objects: &(impl ObjectReader + Sync),
        file: &EpisodeFile,
        params: &JobParams,
        checkpoint: &mut (impl Checkpoint + Send),
    ) -> impl Future<Output = Result<Outcome, JobFailure>> + Send;
}

/// The registry: the processor of each job type.
pub async fn run(
    job_type: JobType,
    objects: &(impl ObjectReader + Sync),
    file: &EpisodeFile,
    params: &JobParams,
    checkpoint: &mut (impl Checkpoint + Send),
) -> Result<Outcome, JobFailure> {
    match job_type {
        JobType::Checksum => Checksum.run(objects, file, params, checkpoint).await,
        JobType::MediaProbe => MediaProbe.run(objects, file, params, checkpoint).await,
        JobType::Thumbnail => Thumbnail.run(objects, file, params, checkpoint).await,
    }
}

fn retryable(e: impl std::fmt::Display) -> JobFailure {
    JobFailure::Retryable(e.to_string())
}

/// Streams the object through `each` chunk by chunk, with checkpoints at every quarter.
async fn stream(
    objects: &(impl ObjectReader + Sync),
    file: &EpisodeFile,
    checkpoint: &mut (impl Checkpoint + Send),
    mut each: impl FnMut(&[u8]) -> Result<(), JobFailure> + Send,
) -> Result<u64, JobFailure> {
    let Some((size, mut body)) = objects.open(&file.key).await.map_err(retryable)? else {
        return Err(JobFailure::Permanent("the file's object is gone".into()));
    };
    let mut read: u64 = 0;
    let mut next_mark = 25u8;
    // Small files are done before a checkpoint would tell anyone anything.
    let report = size >= PROGRESS_FROM;
    while let Some(chunk) = body.next_chunk().await.map_err(retryable)? {
        let chunk = chunk.as_ref();
        each(chunk)?;
        read += chunk.len() as u64;
        let percent = u8::try_from(read.saturating_mul(100) / size.max(1)).unwrap_or(100);
        if report && percent >= next_mark && next_mark < 100 {
            // One checkpoint for the highest quarter passed.
            let reached = (percent / 25 * 25).min(75);
            checkpoint.reached(reached).await?;
            next_mark = reached + 25;
        }
    }
    Ok(read)
}

async fn read_all(
    objects: &(impl ObjectReader + Sync),
    file: &EpisodeFile,
    checkpoint: &mut (impl Checkpoint + Send),
) -> Result<Vec<u8>, JobFailure> {
    if file.size.get() > MAX_IN_MEMORY {
        return Err(JobFailure::Permanent(format!(
            "the file is larger than {} MiB, the most this job reads",
            MAX_IN_MEMORY / (1024 * 1024)
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(file.size.get()).unwrap_or(0));
    stream(objects, file, checkpoint, |c| {
        bytes.extend_from_slice(c);
        Ok(())
    })
    .await?;
    Ok(bytes)
}

/// SHA-256 and size, streaming (constant memory).
#[derive(Debug)]
pub struct Checksum;

impl Processor for Checksum {
    async fn run(
        &self,
        objects: &(impl ObjectReader + Sync),
        file: &EpisodeFile,
        _params: &JobParams,
        checkpoint: &mut (impl Checkpoint + Send),
    ) -> Result<Outcome, JobFailure> {
        let started = std::time::Instant::now();
        let mut ctx = digest::Context::new(&digest::SHA256);
        let size = stream(objects, file, checkpoint, |c| {
            ctx.update(c);
            Ok(())
        })
        .await?;
        let sha = Sha256::from_bytes(ctx.finish().as_ref())
            .ok_or_else(|| JobFailure::Permanent("digest of the wrong length".into()))?;
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        let found = json!({ "sha256": sha.as_hex(), "size": size });
        let mut result = found.clone();
        result["mib_per_second"] =
            json!(((size as f64 / 1_048_576.0) / secs * 10.0).round() / 10.0);
        Ok(Outcome {
            result,
            file_metadata: Some((FileMetadata::Checksum, found, Some(sha))),
            derived: None,
        })
    }
}

/// Container and codec metadata of an audio file (symphonia).
#[derive(Debug)]
pub struct MediaProbe;

pub fn probe(bytes: Vec<u8>, content_type: ContentType) -> Result<Value, JobFailure> {
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let size = bytes.len() as f64;
    let mut hint = Hint::new();
    hint.mime_type(content_type.as_str());
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| JobFailure::Permanent(format!("not a readable media file: {e}")))?;
    let format = probed.format;
    let track = format
        .default_track()
        .ok_or_else(|| JobFailure::Permanent("the file has no audio track".into()))?;
    let p = &track.codec_params;
    let codec = symphonia::default::get_codecs()
        .get_codec(p.codec)
        .map(|d| d.short_name.to_owned())
        .unwrap_or_else(|| format!("{:?}", p.codec));
    let sample_rate = p.sample_rate;
    let duration = match (p.n_frames, p.time_base, sample_rate) {
        (Some(frames), Some(tb), _) => {
            let t = tb.calc_time(frames);
            Some(t.seconds as f64 + t.frac)
        }
        (Some(frames), None, Some(rate)) => Some(frames as f64 / f64::from(rate)),
        _ => None,
    };
    let bit_rate = duration
        .filter(|d| *d > 0.0)
        .map(|d| (size * 8.0 / d).round());
    Ok(json!({
        "kind": "audio",
        "codec": codec,
        "sample_rate": sample_rate,
        "channels": p.channels.map(|c| c.count()),
        "bits_per_sample": p.bits_per_sample,
        "duration_seconds": duration.map(|d| (d * 1000.0).round() / 1000.0),
        "bit_rate": bit_rate,
    }))
}

impl Processor for MediaProbe {
    async fn run(
        &self,
        objects: &(impl ObjectReader + Sync),
        file: &EpisodeFile,
        _params: &JobParams,
        checkpoint: &mut (impl Checkpoint + Send),
    ) -> Result<Outcome, JobFailure> {
        let bytes = read_all(objects, file, checkpoint).await?;
        let found = probe(bytes, file.content_type)?;
        Ok(Outcome {
            result: found.clone(),
            file_metadata: Some((FileMetadata::Probe, found, None)),
            derived: None,
        })
    }
}

/// A resized PNG copy of an image, as a new file.
#[derive(Debug)]
pub struct Thumbnail;

/// What decoding one image may take, well below the job worker's 512 MB: an image that needs
/// more (a "decompression bomb": a small file of enormous dimensions) fails its job for good
/// instead of the function running out of memory, being killed, and retried to the end.
pub const IMAGE_MAX_DIMENSION: u32 = 12_000;
pub const IMAGE_MAX_ALLOC: u64 = 192 * 1024 * 1024;

pub fn thumbnail(bytes: &[u8], max_size: u32) -> Result<(Vec<u8>, u32, u32), JobFailure> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(IMAGE_MAX_DIMENSION);
    limits.max_image_height = Some(IMAGE_MAX_DIMENSION);
    limits.max_alloc = Some(IMAGE_MAX_ALLOC);
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| JobFailure::Permanent(format!("not a readable image: {e}")))?;
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => JobFailure::Permanent(format!(
            "the image is too large to process ({l}; at most {IMAGE_MAX_DIMENSION}×{IMAGE_MAX_DIMENSION} pixels)"
        )),
        e => JobFailure::Permanent(format!("not a readable image: {e}")),
    })?;
    let small = image.thumbnail(max_size, max_size);
    let mut out = Cursor::new(Vec::new());
    small
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| JobFailure::Permanent(format!("could not encode the thumbnail: {e}")))?;
    Ok((out.into_inner(), small.width(), small.height()))
}

impl Processor for Thumbnail {
    async fn run(
        &self,
        objects: &(impl ObjectReader + Sync),
        file: &EpisodeFile,
        params: &JobParams,
        checkpoint: &mut (impl Checkpoint + Send),
    ) -> Result<Outcome, JobFailure> {
        let max_size = match params {
            JobParams::Thumbnail { max_size } => *max_size,
            JobParams::None => 256,
        };
        let bytes = read_all(objects, file, checkpoint).await?;
        let (png, width, height) = thumbnail(&bytes, max_size)?;
        let content_type =
            ContentType::parse("image/png").map_err(|e| JobFailure::Permanent(e.to_string()))?;
        Ok(Outcome {
            result: json!({ "width": width, "height": height, "size": png.len() }),
            file_metadata: None,
            derived: Some((png, content_type)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(seconds: u32, rate: u32, channels: u16) -> Vec<u8> {
        let frames = seconds * rate;
        let data_len = frames * u32::from(channels) * 2;
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        v.extend_from_slice(&(channels * 2).to_le_bytes());
        v.extend_from_slice(&16u16.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        v.resize(v.len() + data_len as usize, 0);
        v
    }

    #[test]
    fn probes_a_wav() {
        let got = probe(wav(2, 8000, 2), ContentType::parse("audio/wav").unwrap()).unwrap();
        assert_eq!(got["sample_rate"], 8000);
        assert_eq!(got["channels"], 2);
        assert_eq!(got["duration_seconds"], 2.0);
        assert_eq!(got["bits_per_sample"], 16);
    }

    #[test]
    fn corrupt_media_fails_for_good() {
        let err = probe(
            b"RIFF garbage".to_vec(),
            ContentType::parse("audio/wav").unwrap(),
        )
        .unwrap_err();
        assert!(matches!(err, JobFailure::Permanent(_)), "{err}");
        assert!(matches!(
            thumbnail(b"\x89PNG nope", 64),
            Err(JobFailure::Permanent(_))
        ));
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn images_beyond_the_memory_limits_fail_for_good_without_decoding() {
        // A valid PNG header claiming 30,000 × 30,000 pixels (3.6 GB decoded): refused from
        // its header, before any pixel buffer is allocated.
        let mut png = Cursor::new(Vec::new());
        image::DynamicImage::ImageLuma8(image::GrayImage::new(8, 8))
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        let mut bytes = png.into_inner();
        // IHDR's width and height follow the signature (8), chunk length (4) and type (4).
        bytes[16..20].copy_from_slice(&30_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&30_000u32.to_be_bytes());
        // The chunk's CRC-32 (over type and data) follows its 13 data bytes.
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        match thumbnail(&bytes, 64) {
            Err(JobFailure::Permanent(m)) => assert!(m.contains("too large"), "{m}"),
            other => panic!("expected a permanent failure, got {other:?}"),
        }
    }

    #[test]
    fn thumbnails_keep_the_aspect_ratio() {
        let img = image::RgbImage::from_fn(300, 150, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let mut png = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        let (bytes, w, h) = thumbnail(png.get_ref(), 100).unwrap();
        assert_eq!((w, h), (100, 50));
        assert_eq!(&bytes[..4], b"\x89PNG");
    }
}
