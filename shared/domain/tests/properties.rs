//! Generated input for every parser of untrusted input in the domain and for its state machines
//! (proptest): parsing never panics, what parses re-serialises to itself, and no sequence of
//! moves reaches an illegal state. The same parsers are fuzzed by `make fuzz` (tests/fuzz).

// A test harness: a failed set-up step fails the test, as it would inside #[test].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use domain::episode::{AirDate, Description, SeriesName, Title};
use domain::file::{ContentType, FileName, FilesMessage, Sha256};
use domain::job::{
    AfterFailure, Claim, Injection, JobFailure, JobGuard, JobMove, MAX_ATTEMPTS, claim,
};
use domain::realtime::ClientMessage;
use domain::store::PageSize;
use domain::{
    ConnectionId, DomainEvent, EpisodeId, EpisodeStatus, EventId, FileId, Job, JobId, JobMessage,
    JobParams, JobState, JobType, RealtimeMessage, Timestamp, UserId, Version,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings near what the parsers see: JSON-ish punctuation, digits, hex, unicode, controls.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-0-9a-fA-F{}\\[\\]\":,. \\\\]{0,64}",
        "\\PC{0,300}",
        "[\\x00-\\x1f\\u{7f}-\\u{9f}\\u{200b}-\\u{200f}\\u{feff} a-z]{0,40}",
    ]
}

/// JSON values of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        hostile().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The golden events of `events/domain/`, as stored.
fn golden_events() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/domain");
    let mut out: Vec<Value> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    out.sort_by_key(|v| v["type"].to_string());
    assert!(out.len() >= 14, "the golden events are there");
    out
}

/// A golden event with one field replaced by any JSON, or removed, or one added.
fn mutated_event() -> impl Strategy<Value = Value> {
    let events = golden_events();
    (
        0..events.len(),
        prop::sample::select(vec![
            "id",
            "type",
            "schema_version",
            "occurred_at",
            "actor",
            "resource",
            "episode_id",
            "correlation_id",
            "request_id",
            "data",
            "extra",
        ]),
        prop::option::of(json_value()),
    )
        .prop_map(move |(i, key, value)| {
            let mut event = events[i].clone();
            let fields = event.as_object_mut().unwrap();
            match value {
                Some(v) => fields.insert(key.to_owned(), v),
                None => fields.remove(key),
            };
            event
        })
}

/// Valid renderings of every field value, as is or slightly changed (case, spaces, a character
/// more or less): so the round-trip branch runs, not only the refusal.
fn near_valid() -> impl Strategy<Value = String> {
    let valid = prop_oneof![
        prop::sample::select(EpisodeStatus::ALL.map(|x| x.as_str()).to_vec())
            .prop_map(str::to_owned),
        prop::sample::select(JobType::ALL.map(|x| x.as_str()).to_vec()).prop_map(str::to_owned),
        prop::sample::select(JobState::ALL.map(|x| x.as_str()).to_vec()).prop_map(str::to_owned),
        prop::sample::select(vec![
            "audio/mpeg",
            "audio/wav",
            "audio/flac",
            "video/mp4",
            "image/png",
            "image/jpeg",
        ])
        .prop_map(str::to_owned),
        (1900u32..2200, 1u32..13, 1u32..32).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        (0i64..4_102_444_800, 0u32..1000).prop_map(|(secs, ms)| {
            let t = Timestamp::from_unix_seconds(secs).unwrap().to_string();
            t.replace(".000Z", &format!(".{ms:03}Z"))
        }),
        (0u64..100_000).prop_map(|n| format!("\"{n}\"")),
        (0u32..200).prop_map(|n| n.to_string()),
        "[0-9a-fA-F]{64}",
        "[a-z0-9._@-]{1,40}",
        "[A-Za-z0-9 ]{1,30}\\.(mp3|wav|png)",
    ];
    (valid, 0u8..6, any::<char>()).prop_map(|(v, how, c)| match how {
        0 | 1 => v,
        2 => v.to_uppercase(),
        3 => format!(" {v} "),
        4 => format!("{v}{c}"),
        _ => v.chars().skip(1).collect(),
    })
}

fn v7() -> impl Strategy<Value = String> {
    any::<[u8; 16]>().prop_map(|mut b| {
        b[6] = (b[6] & 0x0f) | 0x70;
        b[8] = (b[8] & 0x3f) | 0x80;
        uuid::Uuid::from_bytes(b).to_string()
    })
}

/// `parse` never panics, and what it accepts, shown (`show`) and parsed again, is the same value.
fn round_trips<T: PartialEq + std::fmt::Debug, E>(
    input: &str,
    parse: impl Fn(&str) -> Result<T, E>,
    show: impl Fn(&T) -> String,
) -> Result<(), TestCaseError> {
    if let Ok(value) = parse(input) {
        let again = parse(&show(&value));
        prop_assert!(again.is_ok(), "{input:?} parsed, its rendering did not");
        prop_assert_eq!(again.ok().unwrap(), value);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn ids_parse_only_what_they_render(s in prop_oneof![hostile(), v7(), v7().prop_map(|u| u.to_uppercase())]) {
        round_trips(&s, EpisodeId::parse, ToString::to_string)?;
        round_trips(&s, EventId::parse, ToString::to_string)?;
        round_trips(&s, FileId::parse, ToString::to_string)?;
        round_trips(&s, JobId::parse, ToString::to_string)?;
        round_trips(&s, ConnectionId::parse, ToString::to_string)?;
        round_trips(&s, UserId::parse, |u| u.as_str().to_owned())?;
    }

    #[test]
    fn every_v7_id_round_trips(s in v7()) {
        let id = EpisodeId::parse(&s).unwrap();
        prop_assert_eq!(id.to_string(), s);
    }

    #[test]
    fn field_values_are_normal_once_parsed(s in prop_oneof![hostile(), near_valid()]) {
        round_trips(&s, Title::parse, |t| t.as_str().to_owned())?;
        round_trips(&s, Description::parse, |t| t.as_str().to_owned())?;
        round_trips(&s, SeriesName::parse, |t| t.as_str().to_owned())?;
        round_trips(&s, AirDate::parse, |d| serde_json::to_value(d).unwrap().as_str().unwrap().to_owned())?;
        round_trips(&s, EpisodeStatus::parse, |x| x.as_str().to_owned())?;
        round_trips(&s, JobType::parse, |x| x.as_str().to_owned())?;
        round_trips(&s, |s| JobState::parse(s).ok_or(()), |x| x.as_str().to_owned())?;
        round_trips(&s, ContentType::parse, |c| c.as_str().to_owned())?;
        round_trips(&s, FileName::parse, |f| f.as_str().to_owned())?;
        round_trips(&s, Sha256::parse, |h| h.as_hex().to_owned())?;
        round_trips(&s, PageSize::parse, |p| p.get().to_string())?;
        round_trips(&s, Timestamp::parse, ToString::to_string)?;
        round_trips(&s, Version::from_if_match, |v| v.etag())?;
    }

    #[test]
    fn timestamps_render_what_they_parse(seconds in 0i64..253_402_300_799) {
        let t = Timestamp::from_unix_seconds(seconds).unwrap();
        prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn job_params_never_panic(value in prop_oneof![json_value(), job_params_json()], allow in any::<bool>()) {
        for job_type in JobType::ALL {
            if let Ok((params, injection)) = JobParams::parse(job_type, &value, allow) {
                // What was accepted is accepted again from its rendering, the same.
                let mut again = params.to_json();
                if injection != Injection::default() {
                    prop_assert!(allow, "test hooks only when allowed");
                    again["inject_failures"] = json!(injection.failures);
                    again["inject_pause_seconds"] = json!(injection.pause_seconds);
                }
                prop_assert_eq!(JobParams::parse(job_type, &again, allow).unwrap(), (params, injection));
            }
        }
    }

    #[test]
    fn notices_and_tasks_re_serialise_to_themselves(notice in notice(), task in file_task(), job in v7()) {
        let body = notice.to_body();
        prop_assert_eq!(RealtimeMessage::parse(&body).unwrap(), RealtimeMessage::Notice(notice));
        let body = task.to_body();
        prop_assert_eq!(FilesMessage::parse(&body).unwrap(), FilesMessage::Task(task));
        let id = JobId::parse(&job).unwrap();
        prop_assert_eq!(JobMessage::parse(&json!({ "job_id": job }).to_string()).unwrap(), JobMessage { job_id: id });
        // One field more is refused (the messages are closed), not ignored.
        let mut v: Value = serde_json::from_str(&body).unwrap();
        v["extra"] = json!(1);
        prop_assert!(FilesMessage::parse(&v.to_string()).is_err());
    }

    #[test]
    fn queue_messages_never_panic(body in prop_oneof![hostile(), json_value().prop_map(|v| v.to_string())]) {
        let _ = DomainEvent::from_message(&body);
        let _ = RealtimeMessage::parse(&body);
        let _ = JobMessage::parse(&body);
        let _ = FilesMessage::parse(&body);
        let _ = ClientMessage::parse(&body);
    }

    #[test]
    fn events_re_serialise_to_themselves(event in mutated_event()) {
        let body = event.to_string();
        if let Ok(parsed) = DomainEvent::from_message(&body) {
            let again = serde_json::to_string(&parsed).unwrap();
            prop_assert_eq!(DomainEvent::from_message(&again).unwrap(), parsed.clone());
            prop_assert_eq!(RealtimeMessage::parse(&again).unwrap(), RealtimeMessage::Event(parsed));
        }
        let _ = JobMessage::parse(&body);
    }

    #[test]
    fn client_messages_parse_to_what_they_say(
        action in prop::sample::select(vec!["subscribe", "unsubscribe", "ping", "resume", "editing", "idle", "Ping", ""]),
        episode in prop::option::of(prop_oneof![4 => v7(), 1 => hostile()]),
        after in prop::option::of(prop_oneof![4 => v7(), 1 => hostile()]),
        field in prop::option::of(prop::sample::select(vec!["title", "air_date", "status", "Title", "colour"])),
        extra in prop::option::weighted(0.2, ("[a-z]{1,8}", json_value())),
    ) {
        let mut m = serde_json::Map::new();
        m.insert("action".into(), json!(action));
        if let Some(e) = &episode { m.insert("episode_id".into(), json!(e)); }
        if let Some(a) = &after { m.insert("after".into(), json!(a)); }
        if let Some(f) = &field { m.insert("field".into(), json!(f)); }
        if let Some((k, v)) = &extra { m.insert(k.clone(), v.clone()); }
        let body = Value::Object(m.clone()).to_string();
        match ClientMessage::parse(&body) {
            Ok(ClientMessage::Ping) => prop_assert_eq!(m.len(), 1),
            Ok(ClientMessage::Subscribe { episode_id } | ClientMessage::Unsubscribe { episode_id } | ClientMessage::Idle { episode_id }) => {
                prop_assert_eq!(Some(episode_id.to_string()), episode.map(|e| e.to_lowercase()));
                prop_assert_eq!(m.len(), 2, "no field it does not know");
            }
            Ok(ClientMessage::Editing { episode_id, field: f }) => {
                prop_assert_eq!(Some(episode_id.to_string()), episode.map(|e| e.to_lowercase()));
                prop_assert_eq!(Some(f.as_str()), field);
                prop_assert_eq!(m.len(), 3, "no field it does not know");
            }
            Ok(ClientMessage::Resume { episode_id, after: a }) => {
                prop_assert_eq!(Some(episode_id.to_string()), episode.map(|e| e.to_lowercase()));
                prop_assert_eq!(Some(a.to_string()), after.map(|e| e.to_lowercase()));
            }
            Err(_) => {}
        }
    }

    #[test]
    fn no_sequence_of_status_moves_leaves_the_table(moves in prop::collection::vec(0usize..5, 0..40)) {
        let mut status = EpisodeStatus::Draft;
        for m in moves {
            let to = EpisodeStatus::ALL[m];
            if status.can_move_to(to) {
                prop_assert!(to.reachable_from().contains(&status));
                status = to;
            } else {
                prop_assert!(!to.reachable_from().contains(&status));
            }
        }
        prop_assert!(EpisodeStatus::ALL.contains(&status));
    }

    #[test]
    fn no_sequence_of_job_moves_reaches_an_illegal_state(ops in prop::collection::vec(job_op(), 0..60)) {
        let mut world = JobWorld::new();
        for op in ops {
            world.apply(op)?;
        }
    }
}

/// Job params as a client sends them: the known keys, with values in and out of range.
fn job_params_json() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        (0i64..5000).prop_map(Value::from),
        (-5i64..70).prop_map(Value::from),
        json_value(),
    ];
    prop::collection::btree_map(
        prop::sample::select(vec![
            "max_size",
            "inject_failures",
            "inject_pause_seconds",
            "other",
        ]),
        value,
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn user_ref() -> impl Strategy<Value = domain::UserRef> {
    ("[a-z]{1,12}", "\\PC{1,20}").prop_map(|(id, name)| domain::UserRef {
        id: UserId::parse(&id).unwrap(),
        name: domain::DisplayName::new(&name),
    })
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..4_102_444_800).prop_map(|s| Timestamp::from_unix_seconds(s).unwrap())
}

fn connection() -> impl Strategy<Value = ConnectionId> {
    "[A-Za-z0-9=_-]{8,16}".prop_filter_map("a connection id", |s| ConnectionId::parse(&s).ok())
}

/// Every kind of notice the realtime and presence queues carry.
fn notice() -> impl Strategy<Value = domain::Notice> {
    use domain::Notice;
    use domain::realtime::{Addressed, Listener};
    let episode = || v7().prop_map(|s| EpisodeId::parse(&s).unwrap());
    prop_oneof![
        prop::collection::vec(("[a-z]{1,8}", json_value()), 0..3).prop_map(|items| {
            Notice::Notifications {
                items: items
                    .into_iter()
                    .map(|(u, n)| Addressed {
                        recipient: UserId::parse(&u).unwrap(),
                        notification: n,
                    })
                    .collect(),
            }
        }),
        (episode(), user_ref(), timestamp()).prop_map(|(episode_id, user, at)| {
            Notice::PresenceJoined {
                episode_id,
                user,
                at,
            }
        }),
        episode().prop_map(|episode_id| Notice::PresenceRound { episode_id }),
        (episode(), user_ref(), timestamp()).prop_map(|(episode_id, user, left_at)| {
            Notice::PresenceCheck {
                episode_id,
                user,
                left_at,
            }
        }),
        connection().prop_map(|connection_id| Notice::Close { connection_id }),
        (
            prop::collection::vec((connection(), prop::option::of(timestamp())), 0..4),
            "\\PC{0,200}",
            0u32..4
        )
            .prop_map(|(ls, frame, attempt)| Notice::Repost {
                listeners: ls
                    .into_iter()
                    .map(|(connection, token_expires_at)| Listener {
                        connection,
                        token_expires_at
                    })
                    .collect(),
                frame,
                attempt,
            }),
    ]
}

fn file_task() -> impl Strategy<Value = domain::file::FileTask> {
    (v7(), timestamp()).prop_map(|(f, not_before)| domain::file::FileTask::PendingCheck {
        file_id: FileId::parse(&f).unwrap(),
        not_before,
    })
}

/// Found by `events_re_serialise_to_themselves`: without serde_json's `float_roundtrip`, this
/// number in an event's data came back one digit off after each parse and write.
#[test]
fn a_number_in_an_events_data_reads_back_exactly() {
    let mut event = golden_events()[0].clone();
    event["data"] = json!({ "x": -6.341_723_471_985_405e-290, "y": 0.1 + 0.2 });
    let parsed = DomainEvent::from_message(&event.to_string()).unwrap();
    let again = DomainEvent::from_message(&serde_json::to_string(&parsed).unwrap()).unwrap();
    assert_eq!(again.data, event["data"]);
    assert_eq!(again, parsed);
}

/// What can happen to a job: a worker (claims, checkpoints, outcomes), a person (cancel,
/// retry), and time (a lease ending).
#[derive(Debug, Clone)]
enum JobOp {
    Claim,
    Progress(u8),
    Succeed,
    Fail {
        permanent: bool,
        random: u64,
    },
    Checkpoint,
    Cancel,
    Retry,
    LeaseEnds,
    /// A worker acts on the job as it read it a while ago (a duplicate delivery).
    Stale(Box<JobOp>),
}

fn job_op() -> impl Strategy<Value = JobOp> {
    let plain = prop_oneof![
        Just(JobOp::Claim),
        (0u8..=100).prop_map(JobOp::Progress),
        Just(JobOp::Succeed),
        (any::<bool>(), any::<u64>())
            .prop_map(|(permanent, random)| JobOp::Fail { permanent, random }),
        Just(JobOp::Checkpoint),
        Just(JobOp::Cancel),
        Just(JobOp::Retry),
        Just(JobOp::LeaseEnds),
    ];
    prop_oneof![4 => plain.clone(), 1 => plain.prop_map(|op| JobOp::Stale(Box::new(op)))]
}

/// The stored job and its lease, as the store keeps them: a move is written only if its guard
/// admits the stored job (the same decision the DynamoDB condition makes).
struct JobWorld {
    stored: Job,
    lease_until: Option<Timestamp>,
    /// What a slow worker read some moves ago.
    stale: Job,
    now: Timestamp,
}

impl JobWorld {
    fn new() -> Self {
        let now = Timestamp::from_unix_seconds(1_800_000_000).unwrap();
        let job = Job {
            id: JobId::new(),
            episode_id: EpisodeId::new(),
            file_id: Some(FileId::new()),
            job_type: JobType::Checksum,
            params: JobParams::None,
            state: JobState::Queued,
            attempts: 0,
            progress: 0,
            error: None,
            result: None,
            created: domain::episode::Stamp {
                at: now,
                by: UserId::parse("alice").unwrap(),
                by_name: domain::DisplayName::new("Alice"),
            },
            updated_at: now,
            cancel_requested: false,
            inject: Injection::default(),
        };
        Self {
            stale: job.clone(),
            stored: job,
            lease_until: None,
            now,
        }
    }

    fn write(&mut self, change: JobMove) -> Result<bool, TestCaseError> {
        if !change.guard.admits(&self.stored) {
            return Ok(false);
        }
        if let Some(before) = change.expired_before {
            // Taking over from a dead worker: only once its lease is over.
            if self.lease_until.is_some_and(|l| l > before) {
                return Ok(false);
            }
        }
        let (from, to) = (self.stored.state, change.next.state);
        prop_assert!(
            from == to || from.can_move_to(to),
            "{from} → {to} is not in the table"
        );
        if from == JobState::Running
            && to == JobState::Running
            && change.event != domain::EventType::JobProgress
        {
            prop_assert!(
                self.lease_until.is_none_or(|l| l <= self.now),
                "claimed while another worker held it"
            );
        }
        self.stored = change.next;
        self.lease_until = change
            .lease_until
            .filter(|_| self.stored.state == JobState::Running);
        let j = &self.stored;
        prop_assert!(j.attempts <= MAX_ATTEMPTS, "{} attempts", j.attempts);
        prop_assert!(j.progress <= 100);
        prop_assert_eq!(
            j.state == JobState::Succeeded,
            j.result.is_some() && j.progress == 100 && j.state == JobState::Succeeded
        );
        if j.state == JobState::Queued {
            prop_assert!(j.attempts == 0 && j.error.is_none() && !j.cancel_requested);
        }
        Ok(true)
    }

    fn apply(&mut self, op: JobOp) -> Result<(), TestCaseError> {
        self.now = self.now.plus_seconds(1);
        let read = match &op {
            JobOp::Stale(_) => self.stale.clone(),
            _ => self.stored.clone(),
        };
        let op = match op {
            JobOp::Stale(inner) => *inner,
            op => op,
        };
        let now = self.now;
        match op {
            JobOp::Claim => match claim(&read, self.lease_until, now) {
                Claim::Run => {
                    let lease = now.plus_seconds(5);
                    self.write(read.start_attempt(now, lease))?;
                }
                Claim::FailDead => {
                    self.write(read.failed_dead(now))?;
                }
                Claim::CancelDead => {
                    self.write(read.cancelled(now))?;
                }
                Claim::Skip => {}
            },
            JobOp::Progress(p) if read.state == JobState::Running => {
                let lease = self.lease_until.unwrap_or(now);
                self.write(read.progressed(p, now, lease))?;
            }
            JobOp::Succeed if read.state == JobState::Running => {
                self.write(read.succeeded(json!({"ok": true}), now))?;
            }
            JobOp::Fail { permanent, random } if read.state == JobState::Running => {
                let failure = if permanent {
                    JobFailure::Permanent("corrupt".into())
                } else {
                    JobFailure::Retryable("throttled".into())
                };
                let (change, after) = read.attempt_failed(&failure, random, now);
                let retry_in = matches!(after, AfterFailure::RetryIn { .. });
                if self.write(change)? {
                    prop_assert_eq!(retry_in, self.stored.state == JobState::Retrying);
                    prop_assert!(!retry_in || self.stored.attempts < MAX_ATTEMPTS);
                }
            }
            JobOp::Checkpoint => {
                if let Some(change) = read.stopped_at_checkpoint(now) {
                    self.write(change)?;
                }
            }
            JobOp::Cancel => match read.cancel(now) {
                Ok(domain::job::Cancel::Now(change)) => {
                    self.write(*change)?;
                }
                Ok(domain::job::Cancel::AtCheckpoint) => {
                    // The store sets the flag only on a job still running.
                    if self.stored.state == JobState::Running {
                        self.stored.cancel_requested = true;
                    }
                }
                Err(_) => prop_assert!(read.state.is_final()),
            },
            JobOp::Retry => match read.retry(now) {
                Ok(change) => {
                    self.write(change)?;
                }
                Err(_) => prop_assert!(!matches!(
                    read.state,
                    JobState::Failed | JobState::Cancelled
                )),
            },
            JobOp::LeaseEnds => {
                self.now = self.lease_until.map_or(now, |l| l.plus_seconds(1));
            }
            JobOp::Progress(_) | JobOp::Succeed | JobOp::Fail { .. } | JobOp::Stale(_) => {}
        }
        // A guard that admits the stored job admits only the job as read.
        prop_assert!(JobGuard::as_read(&self.stored).admits(&self.stored));
        if self.now.unix_millis() % 3 == 0 {
            self.stale = self.stored.clone();
        }
        Ok(())
    }
}
