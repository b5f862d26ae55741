//! `GET /analytics/episodes` and `GET /analytics/jobs`: the figures the analytics worker kept,
//! over a period (`from`, `to`; the last 30 days when not given), for editors and admins.

use axum::extract::State;
use domain::analytics::{
    DEFAULT_PERIOD_DAYS, Durations, EpisodeReport, JobFigures, JobReport, MAX_PERIOD_DAYS, Period,
    StatusFigures, every_week,
};
use domain::store::StoreError;
use domain::store::analytics::AnalyticsReader;
use domain::{EpisodeStatus, FieldError, JobType, Timestamp};
use lambda_http::http::StatusCode;
use lambda_kit::Problem;
use lambda_kit::http::{Handled, json};
use lambda_kit::router::{Query, QueryRules, Refusal, Writer};

use crate::routes::Shared;

/// Who may read the analytics: editors and admins.
#[derive(Debug)]
pub struct Editors;

impl Refusal for Editors {
    const VIEWERS: &'static str = "the analytics are for editors and admins";
}

/// The query of both reports.
#[derive(Debug)]
pub struct Over;

impl QueryRules for Over {
    const ALLOWED: &'static [&'static str] = &["from", "to"];
}

fn unavailable(e: StoreError) -> Problem {
    Problem::unavailable("analytics store", &e)
}

/// `from` and `to` (RFC 3339), at most 366 days apart; `to` is now and `from` 30 days before
/// `to` when not given. A period that ends before it starts holds nothing: its figures are
/// empty, as `GET /activity` answers such a range. Every bad value at once.
pub fn period(query: &Query<Over>, now: Timestamp) -> Result<Period, Problem> {
    let mut errors = Vec::new();
    let mut read = |name: &'static str| {
        query
            .params
            .get(name)
            .and_then(|v| match Timestamp::parse(v) {
                Ok(t) => Some(t),
                Err(_) => {
                    errors.push(FieldError::new(name, "must be an RFC 3339 date-time"));
                    None
                }
            })
    };
    let (from, to) = (read("from"), read("to"));
    if !errors.is_empty() {
        return Err(Problem::bad_request(errors));
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or_else(|| to.plus_days(-DEFAULT_PERIOD_DAYS));
    if to.unix_seconds() - from.unix_seconds() > MAX_PERIOD_DAYS * 86_400 {
        return Err(Problem::bad_request(vec![FieldError::new(
            "from",
            "must be at most 366 days before to",
        )]));
    }
    Ok(Period { from, to })
}

pub async fn episodes<R: AnalyticsReader>(
    State(api): State<Shared<R>>,
    _: Writer<Editors>,
    query: Query<Over>,
) -> Handled {
    let period = period(&query, Timestamp::now())?;
    let store = &api.analytics;
    let counts = store.status_counts().await.map_err(unavailable)?;
    let mut statuses = Vec::with_capacity(EpisodeStatus::ALL.len());
    for status in EpisodeStatus::ALL {
        let stays = store.stays(status, period).await.map_err(unavailable)?;
        statuses.push(StatusFigures {
            status,
            episodes: counts.get(&status).copied().unwrap_or(0),
            time_in_status: Durations::of(stays),
        });
    }
    let published = store.published_weeks(period).await.map_err(unavailable)?;
    let report = EpisodeReport {
        from: period.from,
        to: period.to,
        statuses,
        weeks: every_week(period, &published),
    };
    json(StatusCode::OK, &report)
}

pub async fn jobs<R: AnalyticsReader>(
    State(api): State<Shared<R>>,
    _: Writer<Editors>,
    query: Query<Over>,
) -> Handled {
    let period = period(&query, Timestamp::now())?;
    let mut types = Vec::with_capacity(JobType::ALL.len());
    for job_type in JobType::ALL {
        let outcomes = api
            .analytics
            .job_outcomes(job_type, period)
            .await
            .map_err(unavailable)?;
        types.push(JobFigures::of(job_type, &outcomes));
    }
    let report = JobReport {
        from: period.from,
        to: period.to,
        types,
    };
    json(StatusCode::OK, &report)
}
