//! The jobs port: creation checked against the episode and the file, idempotency keys, moves
//! guarded by the job as read, leases, pages.

use domain::job::{JobFailure, JobMove};
use domain::store::PageSize;
use domain::store::file::FileWriter;
use domain::store::job::{
    Idempotency, JobCreateError, JobMoveError, JobQuery, JobReader, JobWriter,
};
use domain::{EpisodeId, EventType, FileId, Job, JobState, Timestamp};
use serde_json::json;

use crate::World;
use crate::sample::{self, context};

async fn save(w: &impl World, change: &JobMove) -> Result<(), JobMoveError> {
    let event = change.event(&context("job-worker"));
    w.jobs().save(change, &event).await
}

/// A queued job on an available file of a new episode.
async fn queued(w: &impl World) -> Job {
    let episode = w.episode().await;
    let file = sample::available(episode);
    w.files()
        .create_available(&file, &sample::uploaded(&file))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let job = sample::job(episode, Some(file.id), "alice");
    w.jobs()
        .create(&job, &sample::created(&job), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    job
}

async fn stored(w: &impl World, job: &Job) -> Option<(Job, Option<Timestamp>)> {
    w.jobs()
        .get(job.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|s| (s.job, s.lease_until))
}

pub async fn create_checks_the_episode_and_the_file(w: &impl World) {
    let jobs = w.jobs();
    let create = |job: Job| async move { jobs.create(&job, &sample::created(&job), None).await };
    let r = create(sample::job(EpisodeId::new(), None, "alice")).await;
    assert!(matches!(r, Err(JobCreateError::NoEpisode)), "{r:?}");
    let episode = w.episode().await;
    let r = create(sample::job(episode, Some(FileId::new()), "alice")).await;
    assert!(
        matches!(r, Err(JobCreateError::BadFile)),
        "missing file: {r:?}"
    );
    let pending = sample::file(episode);
    w.files()
        .create(&pending)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = create(sample::job(episode, Some(pending.id), "alice")).await;
    assert!(matches!(r, Err(JobCreateError::BadFile)), "pending: {r:?}");
    let other = w.episode().await;
    let elsewhere = sample::available(other);
    w.files()
        .create_available(&elsewhere, &sample::uploaded(&elsewhere))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = create(sample::job(episode, Some(elsewhere.id), "alice")).await;
    assert!(
        matches!(r, Err(JobCreateError::BadFile)),
        "elsewhere: {r:?}"
    );
    assert!(
        w.events(episode).await.is_empty(),
        "a refused create writes no event"
    );
    let ok = sample::job(other, Some(elsewhere.id), "alice");
    assert!(create(ok.clone()).await.is_ok());
    assert_eq!(stored(w, &ok).await, Some((ok, None)));
    assert_eq!(
        w.events(other).await,
        [EventType::FileUploaded, EventType::JobCreated]
    );
    w.delete_episode(other).await;
    let r = create(sample::job(other, Some(elsewhere.id), "alice")).await;
    assert!(
        matches!(r, Err(JobCreateError::NoEpisode)),
        "deleted: {r:?}"
    );
}

pub async fn an_idempotency_key_names_one_job_per_user(w: &impl World) {
    let episode = w.episode().await;
    // Keys live 24 hours in a shared table: this run's users are its own.
    let (alice, bob) = (format!("alice-{episode}"), format!("bob-{episode}"));
    let key = |fingerprint| {
        Some(Idempotency {
            key: "thumb-1",
            fingerprint,
        })
    };
    let first = sample::job(episode, None, &alice);
    let jobs = w.jobs();
    assert!(
        jobs.create(&first, &sample::created(&first), key("a"))
            .await
            .is_ok()
    );
    for (fingerprint, same) in [("a", true), ("b", false)] {
        let again = sample::job(episode, None, &alice);
        match jobs
            .create(&again, &sample::created(&again), key(fingerprint))
            .await
        {
            Err(JobCreateError::Replay { job, same_request }) => {
                assert_eq!((job, same_request), (first.id, same));
            }
            other => panic!("expected a replay, got {other:?}"),
        }
        assert_eq!(stored(w, &again).await, None, "the replay wrote nothing");
    }
    // Another user's key of the same name is theirs.
    let bobs = sample::job(episode, None, &bob);
    assert!(
        jobs.create(&bobs, &sample::created(&bobs), key("a"))
            .await
            .is_ok()
    );
    assert_eq!(
        w.events(episode).await,
        [EventType::JobCreated, EventType::JobCreated]
    );
}

pub async fn a_move_is_written_only_if_the_job_is_as_read(w: &impl World) {
    let job = queued(w).await;
    let now = Timestamp::now();
    let lease = now.plus_seconds(600);
    let start = job.start_attempt(now, lease);
    assert!(save(w, &start).await.is_ok());
    assert_eq!(
        stored(w, &job).await,
        Some((start.next.clone(), Some(lease)))
    );
    // The same claim again (a duplicate delivery): the job is not as read any more.
    assert!(matches!(save(w, &start).await, Err(JobMoveError::Changed)));
    let running = start.next;
    let progress = running.progressed(50, Timestamp::now(), lease);
    assert!(save(w, &progress).await.is_ok());
    // A move decided from the job before that progress still holds: progress changes no
    // state, attempt or cancel request, and the guard is about those.
    let done = running.succeeded(json!({ "ok": true }), Timestamp::now());
    assert!(save(w, &done).await.is_ok());
    let (stored_job, lease_after) = stored(w, &job).await.unwrap_or_else(|| panic!("gone"));
    assert_eq!((stored_job.state, lease_after), (JobState::Succeeded, None));
    // Moves from a state it has left are refused: a second worker finishing the attempt.
    let late = running.attempt_failed(&JobFailure::Permanent("x".into()), 0, Timestamp::now());
    assert!(matches!(save(w, &late.0).await, Err(JobMoveError::Changed)));
    // A move of a job that does not exist.
    let ghost = sample::job(job.episode_id, None, "alice").start_attempt(now, lease);
    assert!(matches!(save(w, &ghost).await, Err(JobMoveError::Changed)));
    assert_eq!(stored(w, &ghost.next).await, None);
    let kinds: Vec<EventType> = w
        .events(job.episode_id)
        .await
        .into_iter()
        .filter(|t| t.as_str().starts_with("job."))
        .collect();
    assert_eq!(
        kinds,
        [
            EventType::JobCreated,
            EventType::JobStarted,
            EventType::JobProgress,
            EventType::JobSucceeded
        ]
    );
}

pub async fn a_cancel_request_stops_every_move_but_the_stop(w: &impl World) {
    let job = queued(w).await;
    let jobs = w.jobs();
    assert!(
        matches!(
            jobs.request_cancel(job.id, Timestamp::now()).await,
            Ok(false)
        ),
        "queued"
    );
    let lease = Timestamp::now().plus_seconds(600);
    let start = job.start_attempt(Timestamp::now(), lease);
    save(w, &start).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        jobs.request_cancel(job.id, Timestamp::now()).await,
        Ok(true)
    ));
    let (asked, _) = stored(w, &job).await.unwrap_or_else(|| panic!("gone"));
    assert!(asked.cancel_requested);
    // The worker's next checkpoint, decided from the job it holds, is refused...
    let progress = start.next.progressed(50, Timestamp::now(), lease);
    assert!(matches!(
        save(w, &progress).await,
        Err(JobMoveError::Changed)
    ));
    let done = start.next.succeeded(json!({}), Timestamp::now());
    assert!(matches!(save(w, &done).await, Err(JobMoveError::Changed)));
    // ...and the stop, decided from the job as it is now, is written.
    let stop = asked
        .stopped_at_checkpoint(Timestamp::now())
        .unwrap_or_else(|| panic!("a running job with a cancel asked stops"));
    assert!(save(w, &stop).await.is_ok());
    let (cancelled, _) = stored(w, &job).await.unwrap_or_else(|| panic!("gone"));
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(matches!(
        jobs.request_cancel(job.id, Timestamp::now()).await,
        Ok(false)
    ));
    let ghost = sample::job(job.episode_id, None, "alice");
    assert!(matches!(
        jobs.request_cancel(ghost.id, Timestamp::now()).await,
        Ok(false)
    ));
    assert_eq!(stored(w, &ghost).await, None, "not created by a cancel");
}

pub async fn a_dead_workers_job_is_taken_over_only_after_its_lease(w: &impl World) {
    let job = queued(w).await;
    let now = Timestamp::now();
    let live = job.start_attempt(now, now.plus_seconds(600));
    save(w, &live).await.unwrap_or_else(|e| panic!("{e}"));
    let takeover = live
        .next
        .start_attempt(Timestamp::now(), now.plus_seconds(900));
    assert!(
        matches!(save(w, &takeover).await, Err(JobMoveError::Changed)),
        "lease held"
    );

    let other = queued(w).await;
    let dead = other.start_attempt(now.plus_seconds(-700), now.plus_seconds(-100));
    save(w, &dead).await.unwrap_or_else(|e| panic!("{e}"));
    let takeover = dead
        .next
        .start_attempt(Timestamp::now(), now.plus_seconds(900));
    assert!(save(w, &takeover).await.is_ok(), "lease over");
    let (taken, lease) = stored(w, &other).await.unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        (taken.state, taken.attempts, lease),
        (JobState::Running, 2, Some(now.plus_seconds(900)))
    );
}

pub async fn an_episodes_jobs_come_in_pages_and_filter_by_state(w: &impl World) {
    let episode = w.episode().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let job = sample::job(episode, None, "alice");
        w.jobs()
            .create(&job, &sample::created(&job), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ids.push(job.id);
    }
    for id in [ids[1], ids[3]] {
        let job = stored(w, &sample_with_id(episode, id))
            .await
            .unwrap_or_else(|| panic!("gone"))
            .0;
        let start = job.start_attempt(Timestamp::now(), Timestamp::now().plus_seconds(60));
        save(w, &start).await.unwrap_or_else(|e| panic!("{e}"));
        let (failed, _) = start.next.attempt_failed(
            &JobFailure::Permanent("corrupt".into()),
            0,
            Timestamp::now(),
        );
        save(w, &failed).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let query = |state, limit: &str, after| JobQuery {
        episode,
        state,
        limit: PageSize::parse(limit).unwrap_or(PageSize::DEFAULT),
        after,
    };
    let page = w
        .jobs()
        .list(&query(None, "2", None))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        page.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        ids[..2]
    );
    assert_eq!(page.next_after, Some(ids[1]));
    let page = w
        .jobs()
        .list(&query(None, "3", Some(ids[1])))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        page.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        ids[2..]
    );
    assert_eq!(page.next_after, None);
    // On the local stack the job worker hears of these jobs too (their created events are
    // relayed) and fails those it reaches, having no file: the failed ones are read from the
    // store, and the lists must agree with it. Those two were failed here.
    let mut agreed = false;
    for _ in 0..5 {
        let failed = w
            .jobs()
            .list(&query(Some(JobState::Failed), "20", None))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut expected = Vec::new();
        for id in &ids {
            let (job, _) = stored(w, &sample_with_id(episode, *id))
                .await
                .unwrap_or_else(|| panic!("gone"));
            if job.state == JobState::Failed {
                expected.push(*id);
            }
        }
        assert!(expected.contains(&ids[1]) && expected.contains(&ids[3]));
        if failed.items.iter().map(|j| j.id).collect::<Vec<_>>() != expected {
            // The worker failed one between the two reads: read both again.
            continue;
        }
        assert_eq!(failed.next_after, None);
        // One at a time, in creation order, each failed one once.
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = w
                .jobs()
                .list(&query(Some(JobState::Failed), "1", after))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(page.items.len() <= 1);
            walked.extend(page.items.iter().map(|j| j.id));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if walked == expected {
            agreed = true;
            break;
        }
    }
    assert!(agreed, "the failed list never agreed with the store");
}

fn sample_with_id(episode: EpisodeId, id: domain::JobId) -> Job {
    Job {
        id,
        ..sample::job(episode, None, "alice")
    }
}

pub async fn an_item_over_400_kb_is_refused_and_nothing_changes(w: &impl World) {
    let job = queued(w).await;
    let start = job.start_attempt(Timestamp::now(), Timestamp::now().plus_seconds(60));
    save(w, &start).await.unwrap_or_else(|e| panic!("{e}"));
    let huge = JobFailure::Permanent("x".repeat(420 * 1024));
    let (failed, _) = start.next.attempt_failed(&huge, 0, Timestamp::now());
    match save(w, &failed).await {
        Err(JobMoveError::Store(_)) => {}
        other => panic!("a 420 KB item must be refused by the store, got {other:?}"),
    }
    let (after, _) = stored(w, &job).await.unwrap_or_else(|| panic!("gone"));
    assert_eq!(after, start.next, "nothing changed");
    assert!(
        !w.events(job.episode_id)
            .await
            .contains(&EventType::JobFailed)
    );
}

pub async fn a_job_id_is_created_once(w: &impl World) {
    let job = queued(w).await;
    let again = Job {
        job_type: domain::JobType::Checksum,
        ..job.clone()
    };
    let r = w
        .jobs()
        .create(&again, &sample::created(&again), None)
        .await;
    assert!(matches!(r, Err(JobCreateError::Exists)), "{r:?}");
    let (kept, _) = stored(w, &job).await.unwrap_or_else(|| panic!("gone"));
    assert_eq!(kept.job_type, job.job_type);
    let created = w
        .events(job.episode_id)
        .await
        .into_iter()
        .filter(|t| *t == EventType::JobCreated)
        .count();
    assert_eq!(created, 1, "the refused create wrote no event");
}

pub async fn upload_rules_are_set_read_and_cleared_for_live_episodes_only(w: &impl World) {
    use domain::upload_rules::{EpisodeRules, UploadRules};
    let episode = w.episode().await;
    let read = || async {
        w.jobs()
            .upload_rules(episode)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(read().await, None);
    let rules = EpisodeRules {
        episode_id: episode,
        rules: UploadRules::parse(&json!({
            "audio": ["checksum", {"type": "loudness", "params": {"preset": "ebu-r128", "tolerance_lu": 0.7}}],
            "image": [],
        }))
        .unwrap_or_else(|e| panic!("{e}")),
        updated: domain::Stamp::new(&sample::actor("alice"), Timestamp::now()),
    };
    w.jobs()
        .set_upload_rules(episode, Some(&rules))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read().await.as_ref(), Some(&rules));
    // The rules are not one of the episode's jobs.
    let page = w
        .jobs()
        .list(&JobQuery {
            episode,
            state: None,
            limit: PageSize::DEFAULT,
            after: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(page.items.is_empty(), "{:?}", page.items);
    w.jobs()
        .set_upload_rules(episode, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read().await, None);
    let nowhere = EpisodeId::new();
    let r = w.jobs().set_upload_rules(nowhere, Some(&rules)).await;
    assert!(matches!(r, Err(JobCreateError::NoEpisode)), "{r:?}");
    assert_eq!(
        w.jobs()
            .upload_rules(nowhere)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
}
