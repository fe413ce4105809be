//! What a Marathon call can fail with, and the answer each failure gets:
//! Marathon's `{message, details}` body with Marathon's status codes.

use crate::model::{ErrorBody, ErrorDetail};

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum MarathonError {
    /// No credentials, or ones the API server does not accept (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such app, task or deployment (404).
    #[error("{0}")]
    NotFound(String),
    /// The app exists already, or changed meanwhile (409).
    #[error("{0}")]
    Conflict(String),
    /// The request is not JSON, or not what the call takes (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request body is too large (413).
    #[error("{0}")]
    TooLarge(String),
    /// Fields that are invalid or that Mosaic cannot honour (422), by path.
    #[error("Object is not valid")]
    Invalid(Vec<(String, String)>),
    /// The path or method is not served (404 / 405).
    #[error("{0}")]
    NoRoute(String),
    /// The API server failed otherwise (its code, and what it said).
    #[error("{1}")]
    Api(u16, String),
}

impl MarathonError {
    /// One invalid field.
    pub fn field(path: &str, error: impl Into<String>) -> Self {
        MarathonError::Invalid(vec![(path.to_string(), error.into())])
    }

    /// The HTTP status.
    pub fn code(&self) -> u16 {
        match self {
            MarathonError::Unauthorized(_) => 401,
            MarathonError::Forbidden(_) => 403,
            MarathonError::NotFound(_) | MarathonError::NoRoute(_) => 404,
            MarathonError::Conflict(_) => 409,
            MarathonError::BadRequest(_) => 400,
            MarathonError::TooLarge(_) => 413,
            MarathonError::Invalid(_) => 422,
            MarathonError::Api(code, _) => *code,
        }
    }

    /// The body.
    pub fn body(&self) -> ErrorBody {
        let details = match self {
            MarathonError::Invalid(fields) => fields
                .iter()
                .map(|(path, e)| ErrorDetail {
                    path: path.clone(),
                    errors: vec![e.clone()],
                })
                .collect(),
            _ => Vec::new(),
        };
        ErrorBody {
            message: self.to_string(),
            details,
        }
    }

    /// The API server's answer to a call made for `what` (an app's id, say).
    pub fn from_kube(e: kube::Error, what: &str) -> Self {
        match e {
            kube::Error::Api(s) => {
                let message = s.message.clone();
                match s.code {
                    401 => MarathonError::Unauthorized("Invalid username or password.".into()),
                    403 => MarathonError::Forbidden(format!(
                        "Not Authorized to perform this action! ({message})"
                    )),
                    404 => MarathonError::NotFound(format!("{what} does not exist")),
                    409 => MarathonError::Conflict(message),
                    422 => {
                        let causes: Vec<(String, String)> = s
                            .details
                            .as_ref()
                            .map(|d| {
                                d.causes
                                    .iter()
                                    .map(|c| {
                                        (
                                            format!("/{}", c.field.replace('.', "/")),
                                            c.message.clone(),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        let causes = if causes.is_empty() {
                            vec![("/".into(), message)]
                        } else {
                            causes
                        };
                        MarathonError::Invalid(causes)
                    }
                    code => MarathonError::Api(code, message),
                }
            }
            other => {
                MarathonError::Api(503, format!("the API server could not be reached: {other}"))
            }
        }
    }
}
