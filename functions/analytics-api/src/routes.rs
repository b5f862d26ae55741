//! Path and method to handler: the analytics routes, as API Gateway routes them here.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use domain::store::analytics::AnalyticsReader;
use lambda_kit::AwsCallCounter;

use crate::reports;

/// What the function holds across invocations: built once at init.
#[derive(Debug)]
pub struct Api<R> {
    pub analytics: R,
    /// Counts the AWS calls each request makes, for the access log.
    pub calls: AwsCallCounter,
}

/// The state every handler takes (`State<Shared<..>>`), built once at init.
pub type Shared<R> = Arc<Api<R>>;

pub fn app<R: AnalyticsReader + Send + Sync + 'static>(api: Arc<Api<R>>) -> Router {
    let calls = api.calls.clone();
    let routes = Router::new()
        .route("/analytics/episodes", get(reports::episodes::<R>))
        .route("/analytics/jobs", get(reports::jobs::<R>));
    lambda_kit::router::app(routes, api, calls)
}

#[cfg(test)]
mod tests {
    //! The handlers driven with the fixtures from `events/`, against the in-memory figures.

    use domain::analytics::{Changes, JobAttempt, Mark, Move, Timeline};
    use domain::store::analytics::AnalyticsWriter;
    use domain::store::memory::InMemoryAnalytics;
    use domain::{EpisodeId, EpisodeStatus, JobId, JobType, Timestamp};
    use lambda_http::http::StatusCode;
    use lambda_kit::fixture::{HttpFixture, json_body, respond};
    use serde_json::Value;

    use super::*;

    const EPISODES: &str = include_str!("../../../events/analytics-api/episode-analytics.json");
    const JOBS: &str = include_str!("../../../events/analytics-api/job-analytics.json");

    fn api(figures: InMemoryAnalytics) -> Arc<Api<InMemoryAnalytics>> {
        Arc::new(Api {
            analytics: figures,
            calls: AwsCallCounter::default(),
        })
    }

    async fn get(
        figures: &InMemoryAnalytics,
        fixture: &str,
        role: &str,
        query: &str,
    ) -> (StatusCode, Value) {
        let request = HttpFixture::parse(fixture)
            .unwrap()
            .caller("someone", role)
            .query(query)
            .request()
            .unwrap();
        let response = respond(app(api(figures.clone())), request).await;
        (response.status(), json_body(&response).unwrap_or_default())
    }

    fn ago(days: i64) -> Timestamp {
        Timestamp::now().plus_days(-days)
    }

    #[tokio::test]
    async fn an_editor_reads_the_figures_of_the_period() {
        let figures = InMemoryAnalytics::default();
        let episode = EpisodeId::new();
        let mut t = Timeline::default();
        t.moves.insert(
            1,
            Move {
                status: EpisodeStatus::Draft,
                at: ago(3),
            },
        );
        t.moves.insert(
            2,
            Move {
                status: EpisodeStatus::InProduction,
                at: ago(2),
            },
        );
        let changes = Changes::between(episode, &Timeline::default(), &t);
        assert!(figures.save(episode, &t, 0, &changes).await.unwrap());
        let job = JobId::new();
        for (attempt, ok) in [(1, false), (2, true)] {
            for mark in [
                Mark::Started(ago(1).plus_seconds(-4)),
                Mark::Ended {
                    succeeded: ok,
                    at: ago(1),
                },
            ] {
                let a = JobAttempt {
                    job,
                    job_type: JobType::Checksum,
                    attempt,
                    mark,
                };
                figures.record_attempt(&a).await.unwrap();
            }
        }

        let (status, body) = get(&figures, EPISODES, "editor", "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let statuses = body["statuses"].as_array().unwrap();
        assert_eq!(statuses.len(), 5);
        assert_eq!(statuses[1]["status"], "in_production");
        assert_eq!(statuses[1]["episodes"], 1);
        assert_eq!(statuses[0]["time_in_status"]["count"], 1);
        assert_eq!(statuses[0]["time_in_status"]["median_seconds"], 86_400.0);
        assert!(
            (4..=6).contains(&body["weeks"].as_array().unwrap().len()),
            "{body}"
        );

        let (status, body) = get(&figures, JOBS, "admin", "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let checksum = &body["types"][0];
        assert_eq!(checksum["type"], "checksum");
        assert_eq!(
            (checksum["succeeded"].as_u64(), checksum["failed"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(checksum["success_rate"], 0.5);
        assert_eq!(checksum["duration"]["p90_seconds"], 4.0);

        // A period before any of it.
        let (_, body) = get(
            &figures,
            JOBS,
            "editor",
            "from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z",
        )
        .await;
        assert_eq!(body["types"][0]["success_rate"], Value::Null);
    }

    #[tokio::test]
    async fn viewers_are_refused_and_bad_periods_are_400() {
        let figures = InMemoryAnalytics::default();
        for fixture in [EPISODES, JOBS] {
            let (status, body) = get(&figures, fixture, "viewer", "").await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        }
        for (query, fields) in [
            ("from=yesterday&to=soon", vec!["from", "to"]),
            (
                "from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
                vec!["from"],
            ),
            ("since=2026-01-01T00:00:00Z", vec!["since"]),
        ] {
            let (status, body) = get(&figures, EPISODES, "editor", query).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            let named: Vec<&str> = body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert_eq!(named, fields, "{query}");
        }
    }

    #[tokio::test]
    async fn a_period_that_ends_before_it_starts_holds_nothing() {
        let figures = InMemoryAnalytics::default();
        let reversed = "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z";
        let (status, body) = get(&figures, EPISODES, "editor", reversed).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["weeks"], serde_json::json!([]));
        assert_eq!(body["statuses"][0]["time_in_status"]["count"], 0);
        let (status, body) = get(&figures, JOBS, "editor", reversed).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["types"][0]["succeeded"], 0);
    }

    #[tokio::test]
    async fn the_contract_describes_these_routes() {
        use api_contract::testing::{assert_query, assert_routed};
        assert_routed(
            app(api(InMemoryAnalytics::default())),
            api_contract::Function::Analytics,
            EPISODES,
        )
        .await;
        assert_query::<reports::Over>("getEpisodeAnalytics");
        assert_query::<reports::Over>("getJobAnalytics");
    }
}
