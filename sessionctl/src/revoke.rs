//! `sessionctl revoke`: end a session by its cookie, or every session of a user.

use dynamodb_session_store::ops::StoreOps as _;
use serde_json::json;

use crate::context::{Context, cookie_value};
use crate::inspect::verify;
use crate::output::{Failure, count};

/// End a session by its cookie, or every live session bound to a user
///
/// A cookie's session is deleted whatever its state (an administrative end; a request
/// holding its lock finds it gone). A user's sessions are found through the user index
/// (user_hash-index) and each is deleted under the configured concurrency mode; --except
/// keeps one of them (the operator's own, say). Prints how many sessions were ended.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["cookie", "user"])))]
pub struct Args {
    /// End this cookie's session (its value, `name=value`, or `-` to read it from standard
    /// input)
    #[arg(long, value_name = "COOKIE", allow_hyphen_values = true)]
    cookie: Option<String>,
    /// End every live session bound to this user id
    #[arg(long, value_name = "ID")]
    user: Option<String>,
    /// With --user: keep this cookie's session
    #[arg(
        long,
        value_name = "COOKIE",
        requires = "user",
        allow_hyphen_values = true
    )]
    except: Option<String>,
}

pub async fn run(context: &Context, args: Args) -> Result<(), Failure> {
    let store = context.store(|b| b).await?;
    let (ended, whose) = match (&args.cookie, &args.user) {
        (Some(cookie), _) => {
            let id = verify(&store, &cookie_value(cookie)?)?;
            let ended = match store.inspect(&id).await? {
                Some(_) => {
                    store.delete(&id).await?;
                    1
                }
                None => 0,
            };
            (ended, "for this cookie".to_owned())
        }
        (None, Some(user)) => {
            let except = match &args.except {
                Some(cookie) => Some(verify(&store, &cookie_value(cookie)?)?),
                None => None,
            };
            let ended = store.revoke_user_sessions(user, except.as_ref()).await?;
            let kept = if except.is_some() {
                " (the --except session kept)"
            } else {
                ""
            };
            (ended, format!("of user {user:?}{kept}"))
        }
        (None, None) => unreachable!("clap requires --cookie or --user"),
    };
    context.output.result(
        || {
            format!(
                "ended {} session{} {whose}",
                count(ended),
                if ended == 1 { "" } else { "s" }
            )
        },
        || json!({ "ended": ended }),
    );
    Ok(())
}
