//! `GET /api/v1/services`: every service seen (within the usual filters, all time by
//! default) with its entry count and the time of its newest entry, counted from the
//! rollups when the filters allow (`counts`). Owns that summary only; never returns rows.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

use super::counts;
use super::error::ReadError;
use super::filters::LogFilter;
use super::{params_from, QueryPairs, ReadContext};

#[derive(Serialize)]
pub struct Services {
    services: Vec<ServiceSummary>,
}

#[derive(Serialize, sqlx::FromRow)]
pub struct ServiceSummary {
    service: String,
    count: i64,
    last_seen: DateTime<Utc>,
}

pub async fn list(
    State(context): State<ReadContext>,
    query: QueryPairs,
) -> Result<Json<Services>, ReadError> {
    let mut params = params_from(query)?;
    let filter = context.filter(&mut params, Utc::now());
    params.finish().map_err(ReadError::InvalidQuery)?;

    let mut sql = QueryBuilder::<Postgres>::new("");
    push_query(&mut sql, &filter);
    let mut connection = context.reads.acquire().await?;
    let services = connection
        .run(|conn| sql.build_query_as().fetch_all(conn))
        .await?;
    drop(connection);
    Ok(Json(Services { services }))
}

/// The statement behind the list. With service/level filters at most, counts come from
/// the rollups (`counts`) and each service's newest entry from one probe of the
/// `(service, timestamp DESC)` index, starting at its newest counted bucket; any other
/// filter counts `logs` itself.
pub(super) fn push_query(sql: &mut QueryBuilder<'_, Postgres>, filter: &LogFilter) {
    if !counts::answerable(filter) {
        sql.push(
            "SELECT service, count(*) AS count, max(timestamp) AS last_seen FROM logs WHERE TRUE",
        );
        filter.push_conditions(sql);
        sql.push(" GROUP BY service ORDER BY service");
        return;
    }
    sql.push(
        "SELECT s.service, s.count, COALESCE((SELECT max(timestamp) FROM logs \
         WHERE service = s.service AND timestamp >= s.newest",
    );
    filter.push_conditions(sql);
    sql.push("), s.newest) AS last_seen FROM (SELECT service, sum(n)::int8 AS count, max(t) AS newest FROM ");
    counts::push_counted(sql, filter, None);
    sql.push(" AS counted GROUP BY service) AS s WHERE s.count > 0 ORDER BY s.service");
}
