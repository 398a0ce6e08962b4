//! The one place where errors become HTTP responses: RFC 9457 `application/problem+json`
//! with a stable `code`.
//!
//! - [`ApiError`] is what handlers return; [`From<ServiceError>`] maps the service's
//!   errors (validation → 422, not found → 404, …).
//! - [`problem_from_poem_error`] turns everything else (malformed JSON, wrong types,
//!   missing credentials, unknown routes, oversized bodies) into the same shape, so a
//!   client never sees a bare text error.
//! - Internal errors are logged with their cause and answered with a generic 500.

use chat_service::ServiceError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One invalid field.
#[derive(Debug, Clone, Object)]
pub struct FieldError {
    /// The request field, e.g. `text` or `participants`.
    pub field: String,
    pub message: String,
}

/// An error, as RFC 9457 problem details.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A URI reference naming the kind of problem: `/errors/<code>`.
    #[oai(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// Stable, snake_case error code to match on (e.g. `validation_failed`, `not_found`).
    pub code: String,
    /// For `validation_failed`: each invalid field.
    #[oai(skip_serializing_if_is_empty)]
    pub errors: Vec<FieldError>,
}

/// An error response. Handlers return `Result<_, ApiError>`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} {}", problem.status, problem.code)]
pub struct ApiError {
    pub problem: Problem,
    /// Seconds for the `Retry-After` header (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<Option<String>>) -> Self {
        Self {
            problem: Problem {
                kind: format!("/errors/{code}"),
                title: status.canonical_reason().unwrap_or("Error").to_owned(),
                status: status.as_u16(),
                detail: detail.into(),
                code: code.to_owned(),
                errors: Vec::new(),
            },
            retry_after: None,
        }
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail.to_owned())
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let code = err.code();
        match err {
            ServiceError::Validation(v) => {
                let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, v.to_string());
                e.problem.errors.push(FieldError {
                    field: v.field.to_owned(),
                    message: v.message,
                });
                e
            }
            ServiceError::Unauthenticated | ServiceError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, code, err.to_string())
            }
            ServiceError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, code, err.to_string())
            }
            ServiceError::Forbidden(_) => {
                ApiError::new(StatusCode::FORBIDDEN, code, err.to_string())
            }
            ServiceError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, code, err.to_string())
            }
            ServiceError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, err.to_string())
            }
            ServiceError::RateLimited { retry_after } => {
                let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, err.to_string());
                e.retry_after = Some(chat_service::limits::retry_after_secs(retry_after));
                e
            }
            ServiceError::Unavailable => {
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "a dependency is unavailable; retry later".to_owned(),
                );
                e.retry_after = Some(1);
                e
            }
            ServiceError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, None)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = Response::builder()
            .status(self.status())
            .content_type(PROBLEM_CONTENT_TYPE)
            .body(self.problem.to_json_string());
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", poem::http::HeaderValue::from(secs));
        }
        response
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        self.clone().into_response()
    }
}

/// The statuses every operation may answer with a problem, for the OpenAPI document.
const DOCUMENTED: &[(u16, &str)] = &[
    (
        400,
        "Malformed request: unparsable JSON, wrong types, invalid ids",
    ),
    (401, "Missing, invalid, expired or revoked credentials"),
    (403, "The caller's role does not allow this"),
    (404, "Not found, or the caller is not a participant"),
    (409, "Conflicts with the current state"),
    (413, "The body or file is too large"),
    (
        422,
        "Well-formed but invalid input; `errors` names the fields",
    ),
    (
        429,
        "Rate limited; nothing was done. `Retry-After` says when to try again",
    ),
    (503, "A dependency is down; retry later"),
];

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: PROBLEM_CONTENT_TYPE,
                        schema: Problem::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Turns any error that did not come from a handler (request parsing, authentication
/// extraction, routing, body limits) into a problem response.
pub fn problem_from_poem_error(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.clone().into_response();
    }
    let status = err.status();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let detail = if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
        None
    } else {
        Some(err.to_string())
    };
    ApiError::new(status, code, detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::ValidationError;

    #[test]
    fn validation_errors_are_422_with_fields() {
        let err: ApiError =
            ServiceError::from(ValidationError::new("text", "must not be empty")).into();
        let json: serde_json::Value =
            serde_json::from_str(&err.problem.to_json_string()).expect("json");
        assert_eq!(json["status"], 422);
        assert_eq!(json["code"], "validation_failed");
        assert_eq!(json["type"], "/errors/validation_failed");
        assert_eq!(json["errors"][0]["field"], "text");
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let err: ApiError = ServiceError::Internal("password=hunter2 at db".into()).into();
        let body = err.problem.to_json_string();
        assert!(!body.contains("hunter2"));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn unavailable_is_retryable_503() {
        let response = ApiError::from(ServiceError::Unavailable).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
    }
}
