//! CORS as the HTTP API's `CorsConfiguration` in `template.yaml` sets it (the template tests
//! compare the two); only the allowed origins vary (the `CorsAllowedOrigins` parameter there,
//! `CORS_ALLOWED_ORIGINS` here).

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::template::TemplateError;

pub const CORS_ALLOW_METHODS: [&str; 4] = ["GET", "POST", "PATCH", "DELETE"];
pub const CORS_ALLOW_HEADERS: [&str; 4] = ["authorization", "content-type", "idempotency-key", "if-match"];
pub const CORS_EXPOSE_HEADERS: [&str; 6] =
    ["etag", "idempotent-replayed", "location", "retry-after", "www-authenticate", "x-request-id"];
pub const CORS_MAX_AGE_SECS: u64 = 600;

/// The origins browsers may call the API from; none means CORS is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    pub origins: Vec<String>,
}

impl Cors {
    /// A comma-separated list, as the template parameter takes it; `*` allows any origin.
    pub fn parse(list: &str) -> Self {
        Self {
            origins: list.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect(),
        }
    }

    pub fn from_env() -> Self {
        Self::parse(&std::env::var("CORS_ALLOWED_ORIGINS").unwrap_or_default())
    }

    pub(crate) fn layer(&self) -> Result<Option<CorsLayer>, TemplateError> {
        if self.origins.is_empty() {
            return Ok(None);
        }
        let origin = if self.origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            let values = self
                .origins
                .iter()
                .map(|o| HeaderValue::from_str(o).map_err(|_| TemplateError::Origin(o.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            AllowOrigin::list(values)
        };
        let methods: Vec<Method> = CORS_ALLOW_METHODS.iter().filter_map(|m| m.parse().ok()).collect();
        let headers =
            |names: &[&'static str]| names.iter().map(|h| HeaderName::from_static(h)).collect::<Vec<_>>();
        Ok(Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods(methods)
                .allow_headers(headers(&CORS_ALLOW_HEADERS))
                .expose_headers(headers(&CORS_EXPOSE_HEADERS))
                .max_age(Duration::from_secs(CORS_MAX_AGE_SECS)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_a_comma_separated_list() {
        assert_eq!(
            Cors::parse(" https://a.example , ,http://localhost:5173").origins,
            ["https://a.example", "http://localhost:5173"]
        );
        assert!(Cors::parse("").origins.is_empty());
    }
}
