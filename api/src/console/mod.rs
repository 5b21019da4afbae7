//! The web console at `/ui`: one page, its script and its style, built into the binary (no
//! CDN, nothing fetched but this node's own API). The page reads the REST API every node
//! serves — topology, plans, health, tasks, indexes, counts, status, queries — and acts
//! through it (drain a node, cancel a task, index controls), so it holds no rule of its own.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/ui",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/ui/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/console.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

/// An asset; revalidated on every load, so a node upgraded in place serves its own page.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_from_the_binary() {
        for (path, kind, marker) in [
            ("/ui", "text/html", "/ui/console.js"),
            ("/ui/console.js", "text/javascript", "api/ctl/topology"),
            ("/ui/console.css", "text/css", ".copy"),
        ] {
            let response = super::router::<()>()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(content_type.starts_with(kind), "{path}: {content_type}");
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            assert!(
                String::from_utf8_lossy(&body).contains(marker),
                "{path} lacks {marker}"
            );
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for asset in [super::PAGE, super::SCRIPT, super::STYLE] {
            assert!(
                !asset.contains("http://")
                    && !asset.contains("https://")
                    && !asset.contains("//cdn")
            );
        }
    }
}
