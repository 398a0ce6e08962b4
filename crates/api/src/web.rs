//! The web client at `/chat/`: the files built from `web/` (`npm run build`), its
//! configuration (`/chat/config.json`: which gateways to connect to), and the headers
//! that keep the page to itself (content security policy, no framing).

use std::path::PathBuf;

use poem::endpoint::StaticFilesEndpoint;
use poem::http::{Method, StatusCode, header};
use poem::web::Json;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, handler};

use crate::error::ApiError;

/// Settings of the web client and its sessions.
#[derive(Debug, Clone, clap::Args)]
pub struct WebSettings {
    /// Directory of the built web client (`npm run build` in `web/` writes `web/dist`).
    #[arg(long, env = "CHAT_WEB_DIR", default_value = "web/dist")]
    pub web_dir: PathBuf,
    /// WebSocket gateways the web client may connect to, comma-separated, tried in turn:
    /// full URLs (`wss://chat.example.com`) or `:<port>` on the page's own host.
    #[arg(
        long,
        env = "CHAT_WEB_GATEWAYS",
        value_delimiter = ',',
        default_value = ":8081,:8082"
    )]
    pub gateways: Vec<String>,
    /// Mark the session cookies `Secure` (serve the page over HTTPS when this is set).
    #[arg(long, env = "CHAT_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,
    /// Reverse proxies in front of the API (addresses or CIDR ranges, comma-separated).
    /// A request from one of them is counted, for rate limits, against the last address
    /// it added to `X-Forwarded-For`; from anyone else the header is ignored.
    #[arg(long, env = "CHAT_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            web_dir: "web/dist".into(),
            gateways: vec![":8081".into(), ":8082".into()],
            secure_cookies: false,
            trusted_proxies: Vec::new(),
        }
    }
}

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self' ws: wss:; object-src 'none'; \
     base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// `/chat/*`: the page, its assets and `config.json`.
pub fn endpoint(settings: &WebSettings) -> impl Endpoint + use<> {
    let files = StaticFilesEndpoint::new(settings.web_dir.clone())
        .index_file("index.html")
        // `/chat/c/<conversation id>` and other client-side routes get the page.
        .fallback_to_index()
        .no_cache_index();
    let index = settings.web_dir.join("index.html");
    let gateways = settings.gateways.clone();
    Route::new()
        .at("/config.json", config.data(ClientConfig { gateways }))
        .nest("/", files)
        .around(move |next, mut req: Request| {
            let built = index.is_file();
            // HEAD is a GET without the body (the files endpoint only serves GET).
            let head = req.method() == Method::HEAD;
            if head {
                req.set_method(Method::GET);
            }
            async move {
                if !built {
                    return Ok(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "web_client_not_built",
                        "the web client is not built: run `npm ci && npm run build` in web/"
                            .to_owned(),
                    )
                    .into_response());
                }
                let immutable = req.uri().path().contains("/assets/");
                let mut response = next.call(req).await?.into_response();
                let ok = response.status().is_success();
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_SECURITY_POLICY,
                    header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
                );
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    header::HeaderValue::from_static("nosniff"),
                );
                headers.insert(
                    header::REFERRER_POLICY,
                    header::HeaderValue::from_static("same-origin"),
                );
                headers.insert(
                    header::X_FRAME_OPTIONS,
                    header::HeaderValue::from_static("DENY"),
                );
                if immutable && ok {
                    // Vite names assets by their content hash.
                    headers.insert(
                        header::CACHE_CONTROL,
                        header::HeaderValue::from_static("public, max-age=31536000, immutable"),
                    );
                }
                if head {
                    response.set_body(());
                }
                Ok::<Response, poem::Error>(response)
            }
        })
}

/// What the page reads at start-up.
#[derive(Debug, Clone, serde::Serialize)]
struct ClientConfig {
    gateways: Vec<String>,
}

#[handler]
fn config(config: poem::web::Data<&ClientConfig>) -> impl IntoResponse {
    Json(config.0.clone()).with_header(header::CACHE_CONTROL, "no-cache")
}
