//! A streamed response through the session layer, chunk by chunk.
//!
//! `GET /stream` counts the visit in the session, then answers with a body of five lines
//! produced half a second apart. The layer makes its one session write when the handler
//! returns the response's head (status and headers, `Set-Cookie` included); the body then
//! passes through the layer untouched, each chunk reaching the client as soon as the
//! handler produces it — nothing is buffered.
//!
//! ```sh
//! SESSION_BACKEND=memory cargo run -p dynamodb-session-store --example streaming
//! curl -N -b jar -c jar http://127.0.0.1:3000/stream   # one line every 0.5 s
//! ```
//!
//! On AWS Lambda (`AWS_LAMBDA_RUNTIME_API` set) the same router runs through
//! `lambda_http::run_with_streaming_response` (a function URL with `InvokeMode:
//! RESPONSE_STREAM`). Sessions come from DynamoDB (`SessionStore::from_env`) unless
//! `SESSION_BACKEND=memory`; `AWS_DYNAMO_DB_SESSION_SECRET_KEY` is required either way.

use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dynamodb_session_store::{Config, Error, MemoryStore, Session, SessionLayer, SessionStore};

/// Lines in one streamed answer.
const CHUNKS: u32 = 5;
/// Time between two lines.
const PAUSE: Duration = Duration::from_millis(500);

/// The router: `GET /stream` behind `layer`.
fn app(layer: SessionLayer) -> Router {
    Router::new().route("/stream", get(stream)).layer(layer)
}

async fn stream(session: Session) -> Result<Response, Error> {
    // Session work happens before the head is returned: the layer writes it then.
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    let lines = futures::stream::unfold(0, move |line| async move {
        if line == CHUNKS {
            return None;
        }
        if line > 0 {
            tokio::time::sleep(PAUSE).await;
        }
        let text = format!("visit {visits}, line {} of {CHUNKS}\n", line + 1);
        Some((Ok::<_, Infallible>(Bytes::from(text)), line + 1))
    });
    Ok(([("content-type", "text/plain")], Body::from_stream(lines)).into_response())
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let store = match std::env::var("SESSION_BACKEND").as_deref() {
        Ok("memory") => SessionStore::with_backend(Config::from_env()?, MemoryStore::new())?,
        _ => SessionStore::from_env().await?,
    };
    // The environment's AWS_DYNAMO_DB_SESSION_COOKIE_SECURE, if set, wins over the guess.
    let secure = store.config().layer.cookie_secure.unwrap_or(on_lambda);
    let layer = SessionLayer::new(store).with_secure(secure);
    let app = app(layer);
    if on_lambda {
        return lambda_http::run_with_streaming_response(app).await;
    }
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port} is not a port"))?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    eprintln!("serving on http://{}/stream", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
