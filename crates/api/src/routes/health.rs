//! `/healthz` (the process is up) and `/readyz` (its dependencies answer).

use chat_service::ChatService;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::Tag;
use crate::models::Health;

pub struct HealthApi;

#[derive(ApiResponse)]
pub enum Readiness {
    /// PostgreSQL and Redis answer.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// A dependency does not answer; the body says which.
    #[oai(status = 503)]
    NotReady(Json<Health>),
}

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Liveness: the process is up.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
            postgres: None,
            redis: None,
        })
    }

    /// Readiness: PostgreSQL and Redis both answer.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, svc: Data<&ChatService>) -> Readiness {
        let (pg, redis) = tokio::join!(svc.store().ping(), svc.bus().ping());
        let describe = |ok: bool| {
            if ok {
                "ok".to_owned()
            } else {
                "unavailable".to_owned()
            }
        };
        let health = Health {
            status: if pg.is_ok() && redis.is_ok() {
                "ok".into()
            } else {
                "degraded".into()
            },
            postgres: Some(describe(pg.is_ok())),
            redis: Some(describe(redis.is_ok())),
        };
        if pg.is_ok() && redis.is_ok() {
            Readiness::Ready(Json(health))
        } else {
            Readiness::NotReady(Json(health))
        }
    }
}
