//! `GET /openapi.json`: the OpenAPI 3 document of the API, built once from
//! the routes' own descriptions ([`super::api::routes`]), with what applies
//! to every operation added here: the bearer token and its `401`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, ResponseBuilder};

use super::bodies::ErrorBody;

/// The document's name for the API token's security scheme.
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flowhost",
        description = "The HTTP API of `flowhost serve`. Every refusal answers `{\"error\": {\"kind\", \"message\", \"step\"}}`; every answer about one run carries its id in the `x-flowhost-run-id` header. When the server has an API token, every route but `/healthz` requires it (`Authorization: Bearer TOKEN`, or the web UI's session cookie) and answers `401 unauthorized` without it."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "runs", description = "Starting, reading, cancelling and rerunning runs"),
        (name = "flows", description = "The flows loaded"),
        (name = "plugins", description = "The plugins loaded"),
        (name = "events", description = "Events that start the flows they trigger"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The document as JSON text, built on first use.
pub(super) fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.merge(super::api::routes().split_for_parts().1);
        secure(&mut doc);
        // Only types the derives wrote can fail to serialise, and they do not.
        doc.to_pretty_json().unwrap_or_default()
    })
}

/// The bearer scheme, required (when a token is configured) by every
/// operation that does not say it is open, each of which may answer `401`.
fn secure(doc: &mut utoipa::openapi::OpenApi) {
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(
            "The API token, when the server has one (`api_token_hash` or `api_token_env` in `flowhost.toml`); without one configured, no credentials are needed",
        ))
        .build();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    // Either the token or nothing: which one depends on the server's settings.
    doc.security = Some(vec![
        SecurityRequirement::new(BEARER, Vec::<String>::new()),
        SecurityRequirement::default(),
    ]);
    let unauthorized = ResponseBuilder::new()
        .description(
            "`unauthorized`: the server has an API token and the request does not carry it",
        )
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if operation.security.is_none() {
                operation
                    .responses
                    .responses
                    .insert("401".into(), unauthorized.clone().into());
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document of this API", body = Object)))]
pub(super) async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

#[cfg(test)]
mod tests;
