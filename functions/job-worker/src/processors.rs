//! The job types: one trait, one registry. Each reads its file from S3 as a stream and reports
//! progress through checkpoints, where a cancel stops it. The media jobs (probe, loudness,
//! waveform) decode on a blocking thread (`media`), fed chunk by chunk through a small bounded
//! channel: constant memory however long the file.

use std::future::Future;
use std::io::{Cursor, Read};

use aws_lc_rs::digest;
use domain::job::{JobFailure, LoudnessTarget, WaveformResolution, WaveformSpec};
use domain::store::file::FileMetadata;
use domain::store::object::{ByteChunks, ObjectReader};
use domain::{ContentType, EpisodeFile, JobParams, JobType, Sha256};
use media::MediaError;
use serde_json::{Value, json};

/// Files at least this large report progress (every quarter); smaller ones are done first.
const PROGRESS_FROM: u64 = 4 * 1024 * 1024;
/// Largest file the thumbnailer reads into memory.
const MAX_IN_MEMORY: u64 = 64 * 1024 * 1024;
/// Chunks in flight between the download and the decoder (S3 chunks are at most a few
/// hundred KiB): the bound on what a media job holds of its file.
const CHANNEL_CHUNKS: usize = 8;

/// Where a job reports progress; `Err` means stop now (cancelled, or the job was taken over).
pub trait Checkpoint {
    fn reached(&mut self, percent: u8) -> impl Future<Output = Result<(), JobFailure>> + Send;
}

/// A file a job makes: its bytes, content type, and what its name says it is.
#[derive(Debug)]
pub struct Derived {
    pub bytes: Vec<u8>,
    pub content_type: ContentType,
    /// `thumbnail`, `waveform`: the new file is "<stem> (<what>).<extension>".
    pub what: &'static str,
    pub extension: &'static str,
}

/// What a processor produces.
#[derive(Debug)]
pub struct Outcome {
    pub result: Value,
    /// Recorded on the input file: (attribute, value, SHA-256 if computed). When the job also
    /// makes a file, its id is added to the value as `file_id`.
    pub file_metadata: Option<(FileMetadata, Value, Option<Sha256>)>,
    /// A new file of the episode (a thumbnail, a waveform).
    pub derived: Option<Derived>,
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
        JobType::Loudness => Loudness.run(objects, file, params, checkpoint).await,
        JobType::Waveform => Waveform.run(objects, file, params, checkpoint).await,
    }
}

fn retryable(e: impl std::fmt::Display) -> JobFailure {
    JobFailure::Retryable(e.to_string())
}

/// An object's chunks with checkpoints at every quarter of its size.
struct Progressed<B> {
    body: B,
    size: u64,
    read: u64,
    next_mark: u8,
}

impl<B: ByteChunks + Send> Progressed<B> {
    async fn open(
        objects: &(impl ObjectReader<Body = B> + Sync),
        file: &EpisodeFile,
    ) -> Result<Self, JobFailure> {
        let Some((size, body)) = objects.open(&file.key).await.map_err(retryable)? else {
            return Err(JobFailure::Permanent("the file's object is gone".into()));
        };
        Ok(Self {
            body,
            size,
            read: 0,
            next_mark: 25,
        })
    }

    /// The next chunk, after the checkpoint of the quarter it completes (if any).
    async fn next(
        &mut self,
        checkpoint: &mut (impl Checkpoint + Send),
    ) -> Result<Option<B::Chunk>, JobFailure> {
        let Some(chunk) = self.body.next_chunk().await.map_err(retryable)? else {
            return Ok(None);
        };
        self.read += chunk.as_ref().len() as u64;
        let percent = u8::try_from(self.read.saturating_mul(100) / self.size.max(1)).unwrap_or(100);
        // Small files are done before a checkpoint would tell anyone anything.
        if self.size >= PROGRESS_FROM && percent >= self.next_mark && self.next_mark < 100 {
            // One checkpoint for the highest quarter passed.
            let reached = (percent / 25 * 25).min(75);
            checkpoint.reached(reached).await?;
            self.next_mark = reached + 25;
        }
        Ok(Some(chunk))
    }
}

/// Streams the object through `each` chunk by chunk, with checkpoints at every quarter.
async fn stream(
    objects: &(impl ObjectReader + Sync),
    file: &EpisodeFile,
    checkpoint: &mut (impl Checkpoint + Send),
    mut each: impl FnMut(&[u8]) -> Result<(), JobFailure> + Send,
) -> Result<u64, JobFailure> {
    let mut chunks = Progressed::open(objects, file).await?;
    while let Some(chunk) = chunks.next(checkpoint).await? {
        each(chunk.as_ref())?;
    }
    Ok(chunks.read)
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

/// The blocking side of the channel: a `Read` over the chunks the download sends.
#[derive(Debug)]
pub struct ChannelReader {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    pub fn new(chunks: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>) -> Self {
        Self {
            chunks,
            current: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.current.len() {
            match self.chunks.blocking_recv() {
                // The download ended: end of file.
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.at = 0;
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Why a media job failed: an unreadable or too large file fails for good; a broken
/// download is worth another attempt.
fn media_failure(e: MediaError) -> JobFailure {
    match e {
        MediaError::Read(e) => JobFailure::Retryable(format!("reading the file failed: {e}")),
        MediaError::Unreadable(m) => {
            JobFailure::Permanent(format!("not a readable media file: {m}"))
        }
        MediaError::TooLarge(m) => JobFailure::Permanent(m),
    }
}

/// Runs `work` on a blocking thread over the file's bytes, which the download feeds it with
/// checkpoints on the way. A decoder that has read what it needs (a probe) may stop early.
async fn decode<T: Send + 'static>(
    objects: &(impl ObjectReader + Sync),
    file: &EpisodeFile,
    checkpoint: &mut (impl Checkpoint + Send),
    work: impl FnOnce(media::Input<ChannelReader>) -> Result<T, MediaError> + Send + 'static,
) -> Result<T, JobFailure> {
    let mut chunks = Progressed::open(objects, file).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
    let input = media::Input {
        reader: ChannelReader::new(rx),
        mime: file.content_type.as_str().to_owned(),
        size: Some(chunks.size),
    };
    let worker = tokio::task::spawn_blocking(move || work(input));
    let fed: Result<(), JobFailure> = async {
        while let Some(chunk) = chunks.next(checkpoint).await? {
            if tx.send(Ok(chunk.as_ref().to_vec())).await.is_err() {
                // The decoder has what it needs.
                break;
            }
        }
        Ok(())
    }
    .await;
    if let Err(failure) = &fed {
        // The decoder stops at the broken stream; the download's failure is the one reported.
        let _ = tx
            .send(Err(std::io::Error::other(failure.to_string())))
            .await;
    }
    drop(tx);
    let decoded = worker
        .await
        .map_err(|e| JobFailure::Retryable(format!("the decoder stopped: {e}")))?;
    match (decoded, fed) {
        // The decoder had what it needed before the download failed or stopped (a probe reads
        // the headers only); a cancel is still seen by the caller through its checkpoint.
        (Ok(found), _) => Ok(found),
        // Otherwise the download's failure is why the decoder failed.
        (Err(_), Err(failure)) => Err(failure),
        (Err(e), Ok(())) => Err(media_failure(e)),
    }
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
        let found = json!({ "sha256": sha.as_hex(), "size": size });
        let mut result = found.clone();
        result["mib_per_second"] = json!(rate(size, started));
        Ok(Outcome {
            result,
            file_metadata: Some((FileMetadata::Checksum, found, Some(sha))),
            derived: None,
        })
    }
}

/// MiB per second since `started`, to a tenth.
fn rate(bytes: u64, started: std::time::Instant) -> f64 {
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    ((bytes as f64 / 1_048_576.0) / secs * 10.0).round() / 10.0
}

/// Container and track metadata of an audio or video file: reads the headers (an MP4's
/// `moov`), skipping the media data, so a 10 GiB video is probed in constant memory.
#[derive(Debug)]
pub struct MediaProbe;

/// The probe as served: the container and every track, and (as before tracks were listed) the
/// first audio track's codec, sample rate, channels and bits per sample at the top level.
pub fn probe_json(found: &media::probe::Probe) -> Value {
    let mut v = serde_json::to_value(found).unwrap_or_default();
    if let Some(media::probe::Track::Audio {
        codec,
        sample_rate,
        channels,
        bits_per_sample,
        ..
    }) = found
        .tracks
        .iter()
        .find(|t| matches!(t, media::probe::Track::Audio { .. }))
    {
        v["codec"] = json!(codec);
        v["sample_rate"] = json!(sample_rate);
        v["channels"] = json!(channels);
        v["bits_per_sample"] = json!(bits_per_sample);
    }
    if let Some(d) = found.duration_seconds {
        v["duration_seconds"] = json!((d * 1000.0).round() / 1000.0);
    }
    v
}

impl Processor for MediaProbe {
    async fn run(
        &self,
        objects: &(impl ObjectReader + Sync),
        file: &EpisodeFile,
        _params: &JobParams,
        checkpoint: &mut (impl Checkpoint + Send),
    ) -> Result<Outcome, JobFailure> {
        let found = decode(objects, file, checkpoint, media::probe::probe).await?;
        let found = probe_json(&found);
        Ok(Outcome {
            result: found.clone(),
            file_metadata: Some((FileMetadata::Probe, found, None)),
            derived: None,
        })
    }
}

/// Loudness per ITU-R BS.1770-4 / EBU R128 and the verdict against the job's target.
#[derive(Debug)]
pub struct Loudness;

fn target(params: &JobParams) -> media::loudness::Target {
    let (lufs, tolerance, peak) = domain::job::LoudnessPreset::Podcast.values();
    let t = match params {
        JobParams::Loudness(t) => *t,
        _ => LoudnessTarget {
            preset: domain::job::LoudnessPreset::Podcast,
            integrated_lufs: lufs,
            tolerance_lu: tolerance,
            max_true_peak_dbtp: peak,
        },
    };
    media::loudness::Target {
        integrated_lufs: t.integrated_lufs,
        tolerance_lu: t.tolerance_lu,
        max_true_peak_dbtp: t.max_true_peak_dbtp,
    }
}

impl Processor for Loudness {
    async fn run(
        &self,
        objects: &(impl ObjectReader + Sync),
        file: &EpisodeFile,
        params: &JobParams,
        checkpoint: &mut (impl Checkpoint + Send),
    ) -> Result<Outcome, JobFailure> {
        let started = std::time::Instant::now();
        let target = target(params);
        let found = decode(objects, file, checkpoint, move |input| {
            media::loudness::measure(input, &target)
        })
        .await?;
        let found = serde_json::to_value(found.rounded()).map_err(retryable)?;
        let mut result = found.clone();
        result["mib_per_second"] = json!(rate(file.size.get(), started));
        Ok(Outcome {
            result,
            file_metadata: Some((FileMetadata::Loudness, found, None)),
            derived: None,
        })
    }
}

/// Min/max peaks for a player, as an audiowaveform JSON file of the episode.
#[derive(Debug)]
pub struct Waveform;

fn waveform_spec(params: &JobParams) -> media::waveform::Spec {
    let spec = match params {
        JobParams::Waveform(w) => *w,
        _ => WaveformSpec {
            resolution: WaveformResolution::PixelsPerSecond(domain::job::DEFAULT_PIXELS_PER_SECOND),
            bits: 8,
            split_channels: false,
        },
    };
    media::waveform::Spec {
        resolution: match spec.resolution {
            WaveformResolution::SamplesPerPixel(n) => {
                media::waveform::Resolution::SamplesPerPixel(n)
            }
            WaveformResolution::PixelsPerSecond(n) => {
                media::waveform::Resolution::PixelsPerSecond(n)
            }
        },
        bits: if spec.bits == 16 {
            media::waveform::Bits::Sixteen
        } else {
            media::waveform::Bits::Eight
        },
        split_channels: spec.split_channels,
    }
}

impl Processor for Waveform {
    async fn run(
        &self,
        objects: &(impl ObjectReader + Sync),
        file: &EpisodeFile,
        params: &JobParams,
        checkpoint: &mut (impl Checkpoint + Send),
    ) -> Result<Outcome, JobFailure> {
        let started = std::time::Instant::now();
        let spec = waveform_spec(params);
        let wave = decode(objects, file, checkpoint, move |input| {
            media::waveform::render(input, &spec)
        })
        .await?;
        let bytes = serde_json::to_vec(&wave).map_err(retryable)?;
        let content_type = ContentType::parse("application/json")
            .map_err(|e| JobFailure::Permanent(e.to_string()))?;
        let about = json!({
            "samples_per_pixel": wave.samples_per_pixel,
            "sample_rate": wave.sample_rate,
            "channels": wave.channels,
            "bits": wave.bits,
            "length": wave.length,
        });
        let mut result = about.clone();
        result["size"] = json!(bytes.len());
        result["mib_per_second"] = json!(rate(file.size.get(), started));
        Ok(Outcome {
            result,
            file_metadata: Some((FileMetadata::Waveform, about, None)),
            derived: Some(Derived {
                bytes,
                content_type,
                what: "waveform",
                extension: "json",
            }),
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
            _ => 256,
        };
        let bytes = read_all(objects, file, checkpoint).await?;
        let (png, width, height) = thumbnail(&bytes, max_size)?;
        let content_type =
            ContentType::parse("image/png").map_err(|e| JobFailure::Permanent(e.to_string()))?;
        Ok(Outcome {
            result: json!({ "width": width, "height": height, "size": png.len() }),
            file_metadata: None,
            derived: Some(Derived {
                bytes: png,
                content_type,
                what: "thumbnail",
                extension: "png",
            }),
        })
    }
}

/// Test media for the processors' and the worker's tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A 16-bit PCM WAV of a sine of `freq` Hz at `amplitude` (of full scale), on every channel.
    pub fn sine_wav(seconds: f64, rate: u32, channels: u16, freq: f64, amplitude: f64) -> Vec<u8> {
        let frames = (seconds * f64::from(rate)) as u32;
        let data_len = frames * u32::from(channels) * 2;
        let mut v = Vec::with_capacity(44 + data_len as usize);
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
        for i in 0..frames {
            let t = f64::from(i) / f64::from(rate);
            let x = (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin() * 32767.0).round()
                as i16;
            for _ in 0..channels {
                v.extend_from_slice(&x.to_le_bytes());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use domain::store::memory::InMemoryObjects;

    use super::*;

    /// Silence: a WAV of zeros.
    fn wav(seconds: u32, rate: u32, channels: u16) -> Vec<u8> {
        testing::sine_wav(f64::from(seconds), rate, channels, 0.0, 0.0)
    }

    /// A checkpoint that lets the job go on, or stops it.
    struct Checkpoints(bool);

    impl Checkpoint for Checkpoints {
        async fn reached(&mut self, _: u8) -> Result<(), JobFailure> {
            if self.0 {
                Ok(())
            } else {
                Err(JobFailure::Permanent("stopped at a checkpoint".into()))
            }
        }
    }

    fn stored(objects: &InMemoryObjects, bytes: Vec<u8>, content_type: &str) -> EpisodeFile {
        let alice = domain::Actor {
            id: domain::UserId::parse("alice").unwrap(),
            name: domain::DisplayName::new("Alice"),
            role: domain::Role::Editor,
        };
        let f = domain::NewFile {
            name: domain::FileName::parse("take.wav").unwrap(),
            content_type: ContentType::parse(content_type).unwrap(),
            size: domain::FileSize::new(bytes.len() as u64).unwrap(),
            sha256: None,
        }
        .into_file(
            domain::FileId::new(),
            domain::EpisodeId::new(),
            domain::Stamp::new(&alice, domain::Timestamp::now()),
        );
        objects.upload(&f.key, bytes, None);
        f
    }

    #[tokio::test]
    async fn probes_a_wav_through_the_stream() {
        let objects = InMemoryObjects::default();
        let file = stored(&objects, wav(2, 8000, 2), "audio/wav");
        let got = MediaProbe
            .run(&objects, &file, &JobParams::None, &mut Checkpoints(true))
            .await
            .unwrap()
            .result;
        assert_eq!(got["sample_rate"], 8000);
        assert_eq!(got["channels"], 2);
        assert_eq!(got["duration_seconds"], 2.0);
        assert_eq!(got["bits_per_sample"], 16);
        assert_eq!(got["tracks"][0]["type"], "audio");
    }

    #[tokio::test]
    async fn corrupt_media_fails_for_good() {
        let objects = InMemoryObjects::default();
        let file = stored(&objects, b"RIFF garbage".to_vec(), "audio/wav");
        for job in [JobType::MediaProbe, JobType::Loudness, JobType::Waveform] {
            let err = run(
                job,
                &objects,
                &file,
                &JobParams::None,
                &mut Checkpoints(true),
            )
            .await
            .unwrap_err();
            assert!(matches!(err, JobFailure::Permanent(_)), "{job}: {err}");
        }
        assert!(matches!(
            thumbnail(b"\x89PNG nope", 64),
            Err(JobFailure::Permanent(_))
        ));
    }

    #[tokio::test]
    async fn a_stop_at_a_checkpoint_stops_the_decoder_and_is_what_is_reported() {
        let objects = InMemoryObjects::default();
        // 5 MiB: large enough for checkpoints.
        let file = stored(&objects, wav(40, 32_000, 2), "audio/wav");
        let err = run(
            JobType::Loudness,
            &objects,
            &file,
            &JobParams::None,
            &mut Checkpoints(false),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            JobFailure::Permanent("stopped at a checkpoint".into()).to_string()
        );
        // Unstopped, the same file is measured: silence never meets a target.
        let done = run(
            JobType::Loudness,
            &objects,
            &file,
            &JobParams::None,
            &mut Checkpoints(true),
        )
        .await
        .unwrap();
        assert_eq!(done.result["verdict"]["passed"], false);
    }

    #[test]
    fn a_channel_reader_reads_every_chunk_then_ends_or_fails() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Ok(b"ab".to_vec())).unwrap();
        tx.try_send(Ok(Vec::new())).unwrap();
        tx.try_send(Ok(b"cde".to_vec())).unwrap();
        drop(tx);
        let mut all = Vec::new();
        ChannelReader::new(rx).read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abcde");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Ok(b"ab".to_vec())).unwrap();
        tx.try_send(Err(std::io::Error::other("the download broke")))
            .unwrap();
        let mut all = Vec::new();
        let err = ChannelReader::new(rx).read_to_end(&mut all).unwrap_err();
        assert_eq!(err.to_string(), "the download broke");
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
