//! The browser pages: GraphiQL at `/` and the live console at `/console`,
//! with every file they load embedded in the binary (`assets/`) and served
//! under `/assets/`. Nothing comes from a CDN: the pages work offline and
//! a release binary is all there is to deploy.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// An embedded file: its path under `/assets/`, its media type and bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $media_type:literal) => {
        Asset { path: $path, media_type: $media_type, bytes: include_bytes!(concat!("../../assets/", $path)) }
    };
}

/// Every file the pages load. Vendored files (`vendor/`) never change
/// under a given build; the project's own are small and revalidated.
static ASSETS: &[Asset] = &[
    asset!("console/client.js", "text/javascript; charset=utf-8"),
    asset!("console/console.js", "text/javascript; charset=utf-8"),
    asset!("console/environments.js", "text/javascript; charset=utf-8"),
    asset!("console/operation.js", "text/javascript; charset=utf-8"),
    asset!("console/status.js", "text/javascript; charset=utf-8"),
    asset!("console/ui.js", "text/javascript; charset=utf-8"),
    asset!("console/console.css", "text/css; charset=utf-8"),
    asset!("console/graphiql.js", "text/javascript; charset=utf-8"),
    asset!("vendor/graphiql.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/graphiql.min.css", "text/css; charset=utf-8"),
    asset!("vendor/react.production.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/react-dom.production.min.js", "text/javascript; charset=utf-8"),
];

const GRAPHIQL_PAGE: &str = include_str!("../../assets/console/graphiql.html");
const CONSOLE_PAGE: &str = include_str!("../../assets/console/index.html");

/// GraphiQL, pointed at `/graphql` for queries, mutations and (over
/// graphql-transport-ws) subscriptions.
pub async fn graphiql() -> Html<&'static str> {
    Html(GRAPHIQL_PAGE)
}

/// The live console: one page; its views are addressed by the fragment
/// (`/console#/environments/env_1`, `#/operations/op_3`, `#/status`).
pub async fn console() -> Html<&'static str> {
    Html(CONSOLE_PAGE)
}

/// `GET /assets/{*path}`: an embedded file, or 404.
pub async fn asset(Path(path): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cache = if asset.path.starts_with("vendor/") { "public, max-age=86400" } else { "no-cache" };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
