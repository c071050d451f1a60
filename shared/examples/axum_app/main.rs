//! One axum `Router` with sessions (`app.rs`), served two ways by the same binary:
//!
//! * on AWS Lambda (the runtime sets `AWS_LAMBDA_RUNTIME_API`) through `lambda_http::run`;
//! * anywhere else by `axum::serve` on `127.0.0.1:$PORT` (default 3000), plain HTTP.
//!
//! Sessions live in DynamoDB (`SessionStore::from_env`: `AWS_DYNAMO_DB_SESSION_SECRET_KEY`,
//! `..._TABLE_NAME` and the usual AWS configuration, `AWS_ENDPOINT_URL_DYNAMODB` included),
//! or in process memory with `SESSION_BACKEND=memory` — no DynamoDB needed, and without a
//! secret key one is drawn at random at start-up:
//!
//! ```sh
//! SESSION_BACKEND=memory cargo run -p dynamodb-session-store --example axum_app
//! curl -b jar -c jar http://127.0.0.1:3000/counter        # {"count":1}
//! curl -b jar -c jar http://127.0.0.1:3000/counter        # {"count":2}
//! curl -b jar -c jar -X POST http://127.0.0.1:3000/renew  # {"count":2}, a new cookie
//! curl -b jar -c jar -X POST http://127.0.0.1:3000/destroy
//! ```
//!
//! Off Lambda the cookie is not `Secure` (plain HTTP on a local port would never get it
//! back); the layer's environment variables (`AWS_DYNAMO_DB_SESSION_COOKIE_SECURE`, ...) still
//! override that.

mod app;

use std::net::Ipv4Addr;

use dynamodb_session_store::config::SecretKey;
use dynamodb_session_store::{Config, MemoryStore, SessionLayer, SessionStore};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let store = store_from_env().await?;
    let secure = store.config().layer.cookie_secure.unwrap_or(on_lambda);
    let layer = SessionLayer::new(store).with_secure(secure);
    let app = app::app(layer);
    if on_lambda {
        return lambda_http::run(app).await;
    }
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT={port} is not a port"))?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    eprintln!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// DynamoDB from the environment, or memory with `SESSION_BACKEND=memory`.
async fn store_from_env() -> Result<SessionStore, lambda_http::Error> {
    match std::env::var("SESSION_BACKEND").as_deref() {
        Ok("memory") => {
            let mut config = Config::from_env()?;
            if config.secret_key.is_none() {
                // Sessions in memory die with the process, so a random key loses nothing.
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
                config.secret_key = Some(SecretKey::new(secret));
            }
            Ok(SessionStore::with_backend(config, MemoryStore::new())?)
        }
        Ok("dynamodb") | Err(std::env::VarError::NotPresent) => Ok(SessionStore::from_env().await?),
        Ok(other) => Err(format!("SESSION_BACKEND={other}: expected memory or dynamodb").into()),
        Err(e) => Err(format!("SESSION_BACKEND: {e}").into()),
    }
}
