//! `GET /api/v1/services`: every service seen (within the usual filters, all time by
//! default) with its entry count and the time of its newest entry. Owns that summary
//! only; never returns rows.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

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
    let filter = LogFilter::parse(&mut params, Utc::now());
    params.finish().map_err(ReadError::InvalidQuery)?;

    let mut sql = QueryBuilder::<Postgres>::new(
        "SELECT service, count(*) AS count, max(timestamp) AS last_seen FROM logs WHERE TRUE",
    );
    filter.push_conditions(&mut sql);
    sql.push(" GROUP BY service ORDER BY service");
    let mut connection = context.reads.acquire().await?;
    let services = connection
        .run(|conn| sql.build_query_as().fetch_all(conn))
        .await?;
    drop(connection);
    Ok(Json(Services { services }))
}
