//! The server's one error type and its mapping to HTTP statuses.
//!
//! Every failure a client can see leaves through [`ApiError`], rendered as
//! `{"error": {"code": "...", "message": "..."}}` with a stable machine-readable `code`.
//! Library errors are mapped by [`crate::ErrorKind`] in one `match`: user faults are 422,
//! runtime and internal faults 500. Messages never quote request bodies or mention text.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::dto::{ErrorBody, ErrorResponse};
use crate::ErrorKind;

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code (`bad_json`, `invalid_request`, `overloaded`, ...).
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (overload, timeout, not ready).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the body is not JSON (or not UTF-8).
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_json", message)
    }

    /// 422: well-formed but unacceptable input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// 413: more than the server accepts in one request.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 503 with `Retry-After`: the encoder queue is full, or the indexes are still loading.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        match e.kind() {
            ErrorKind::User => ApiError::invalid(e.to_string()),
            ErrorKind::Runtime => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "runtime", e.to_string())
            }
            ErrorKind::Internal => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorBody {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Parses a JSON body: syntax errors (and invalid UTF-8) are 400, well-formed JSON of the
/// wrong shape is 422. serde's messages for shape errors name fields and types, which is what
/// a client needs; they go to the client only, never to the log.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::invalid(e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => ApiError::bad_json(format!(
                "the body is not valid JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            )),
        }
    })
}
