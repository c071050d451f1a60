//! axum-login 0.18 on this store, through [`TowerSessionsStore`] (feature `tower-sessions`):
//! a JSON login, a `login_required!` route and a logout, served on `127.0.0.1:$PORT`
//! (default 3000) over plain HTTP.
//!
//! Sessions live in DynamoDB (`SessionStore::from_env`: `AWS_DYNAMO_DB_SESSION_SECRET_KEY`,
//! `..._TABLE_NAME` and the usual AWS configuration, `AWS_ENDPOINT_URL_DYNAMODB` included);
//! the table is created if missing. `./scripts/run` starts a local DynamoDB; then:
//!
//! ```sh
//! cargo run -p dynamodb-session-store --features axum,tower-sessions --example axum_login
//! curl -i http://127.0.0.1:3000/protected                                  # 401
//! curl -c jar -H 'content-type: application/json' \
//!      -d '{"username":"ferris","password":"crab-rave"}' http://127.0.0.1:3000/login
//! curl -b jar http://127.0.0.1:3000/protected                              # {"user":"ferris"}
//! curl -b jar -c jar -X POST http://127.0.0.1:3000/logout
//! ```
//!
//! The table holds a keyed hash of the tower-sessions id and sealed data: neither the
//! cookie value nor the user id can be read from it.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_login::tower_sessions::cookie::time::Duration;
use axum_login::tower_sessions::{Expiry, SessionManagerLayer};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};
use dynamodb_session_store::ops::StoreOps as _;
use dynamodb_session_store::{SessionStore, TowerSessionsStore};
use serde::Deserialize;
use serde_json::json;

/// How long a session lives without a request: each request moves its expiry (and so the
/// item's `expire_at`) forward.
const IDLE: Duration = Duration::hours(1);

/// A user as the application knows it.
#[derive(Debug, Clone)]
pub struct User {
    id: String,
    username: String,
    /// What a session is checked against (a password hash, say): changing it ends every
    /// session of the user.
    auth_hash: Vec<u8>,
}

impl AuthUser for User {
    type Id = String;

    fn id(&self) -> Self::Id {
        self.id.clone()
    }

    fn session_auth_hash(&self) -> &[u8] {
        &self.auth_hash
    }
}

/// What a login form sends.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

/// The user directory: one fixed user, standing in for a database.
#[derive(Debug, Clone)]
pub struct Users {
    by_id: HashMap<String, (User, String)>,
}

impl Default for Users {
    fn default() -> Self {
        let ferris = User {
            id: "user-7f3a91".into(),
            username: "ferris".into(),
            auth_hash: b"auth-hash-of-ferris".to_vec(),
        };
        Users {
            by_id: HashMap::from([(ferris.id.clone(), (ferris, "crab-rave".into()))]),
        }
    }
}

impl AuthnBackend for Users {
    type User = User;
    type Credentials = Credentials;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, credentials: Credentials) -> Result<Option<User>, Self::Error> {
        // A real directory compares password hashes, in constant time.
        Ok(self
            .by_id
            .values()
            .find(|(user, password)| {
                user.username == credentials.username && *password == credentials.password
            })
            .map(|(user, _)| user.clone()))
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Self::Error> {
        Ok(self.by_id.get(id).map(|(user, _)| user.clone()))
    }
}

/// The application: `POST /login` (JSON credentials), `GET /protected` (logged-in users
/// only, 401 otherwise), `POST /logout`. `secure` is the cookie's `Secure` attribute: off
/// only for plain HTTP on a local port.
pub fn app(store: SessionStore, secure: bool) -> Router {
    let sessions = SessionManagerLayer::new(TowerSessionsStore::new(store))
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(IDLE));
    let auth = AuthManagerLayerBuilder::new(Users::default(), sessions).build();
    Router::new()
        .route("/protected", get(protected))
        .route_layer(axum_login::login_required!(Users))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(auth)
}

async fn login(mut auth: AuthSession<Users>, Json(credentials): Json<Credentials>) -> Response {
    match auth.authenticate(credentials).await {
        Ok(Some(user)) => match auth.login(&user).await {
            // `login` moved the session to a fresh id (no session fixation).
            Ok(()) => Json(json!({"user": user.username})).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn protected(auth: AuthSession<Users>) -> Response {
    match auth.user {
        Some(user) => Json(json!({"user": user.username})).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn logout(mut auth: AuthSession<Users>) -> StatusCode {
    match auth.logout().await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = SessionStore::from_env().await?;
    store.create_table().await?;
    let port: u16 = std::env::var("PORT").as_deref().unwrap_or("3000").parse()?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    eprintln!("axum-login example on http://{}", listener.local_addr()?);
    axum::serve(listener, app(store, false)).await?;
    Ok(())
}
