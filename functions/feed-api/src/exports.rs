//! Exports of the activity log, for admins: `POST /activity/exports` asks for one (the filters
//! of `GET /activity`, in the body), `GET /activity/exports/{id}` says where it is and, once
//! it succeeded, hands out fresh download links. The export worker writes the files.

use axum::extract::State;
use domain::export::{ActivityExport, ExportState};
use domain::store::export::{Exports, download_links};
use domain::store::object::ObjectTransfers;
use domain::{Actor, ExportId, FieldError, Role, Timestamp, ValidationErrors};
use lambda_http::http::{StatusCode, header};
use lambda_kit::http::{Handled, json, set_header};
use lambda_kit::router::{BodyRules, Caller, Id, JsonObject, NoQuery, Query};
use lambda_kit::{Problem, RequestMeta};
use serde_json::Value;

use crate::activity::parse_filters;
use crate::routes::{ExportDesk, Shared};

/// The body of `POST /activity/exports`: the filters of `GET /activity`, each a string.
#[derive(Debug)]
pub struct ExportBody;

impl BodyRules for ExportBody {
    const MAX_BYTES: usize = 4 * 1024;
    const FIELDS: &'static [&'static str] = crate::activity::FILTER_FIELDS;
}

fn admin_only(actor: &Actor) -> Result<(), Problem> {
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(Problem::forbidden("only admins export the activity log"))
    }
}

fn unavailable(e: domain::store::StoreError) -> Problem {
    Problem::unavailable("export store", &e)
}

/// `POST /activity/exports`: a queued export (202, `Location`), refused before the body is
/// looked at for anyone but an admin.
pub async fn start<A, N, P, S: Exports, O>(
    State(api): State<Shared<A, N, P, ExportDesk<S, O>>>,
    meta: RequestMeta,
    Caller(actor): Caller,
    _: Query<NoQuery>,
    body: Result<JsonObject<ExportBody>, Problem>,
) -> Handled {
    admin_only(&actor)?;
    let body = body?;
    let mut errors: Vec<FieldError> = body.errors.fields().to_vec();
    let mut strings = Vec::new();
    for (key, value) in &body.fields {
        match value {
            Value::String(text) => strings.push((key.as_str(), text.as_str())),
            _ => errors.push(FieldError::new(key.as_str(), "must be a string")),
        }
    }
    // A `to` before `from` is an empty range, as `GET /activity` takes it: an empty export.
    let filters = parse_filters(strings, &mut errors);
    if !errors.is_empty() {
        let mut all = ValidationErrors::default();
        errors.into_iter().for_each(|e| all.push(e));
        return Err(Problem::unprocessable(all));
    }
    let export = ActivityExport::requested(
        actor,
        filters,
        (meta.correlation_id.clone(), meta.request_id.clone()),
        Timestamp::now(),
        api.exports.retention_days,
    );
    match api.exports.store.create(&export).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(unavailable(domain::store::StoreError::unavailable(
                std::io::Error::other("a new export id was taken"),
            )));
        }
        Err(e) => return Err(unavailable(e)),
    }
    tracing::info!(export_id = %export.id, "activity export requested");
    let mut response = json(StatusCode::ACCEPTED, &export.to_json(Vec::new()))?;
    set_header(
        &mut response,
        header::LOCATION,
        &format!("/activity/exports/{}", export.id),
    );
    Ok(response)
}

/// `GET /activity/exports/{id}`: the export; once it succeeded, a link to each file valid for
/// an hour (signed now, so it is never stale).
pub async fn get<A, N, P, S: Exports, O: ObjectTransfers>(
    State(api): State<Shared<A, N, P, ExportDesk<S, O>>>,
    Caller(actor): Caller,
    Id(id): Id<ExportId>,
    _: Query<NoQuery>,
) -> Handled {
    admin_only(&actor)?;
    let export = api
        .exports
        .store
        .get(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| Problem::not_found("no such export"))?;
    let downloads = if export.state == ExportState::Succeeded {
        download_links(&api.exports.objects, &export)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "download links could not be signed");
                Problem::service_unavailable()
            })?
    } else {
        Vec::new()
    };
    json(StatusCode::OK, &export.to_json(downloads))
}
