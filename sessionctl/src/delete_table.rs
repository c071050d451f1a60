//! `sessionctl delete-table`: the library's `SessionTable::delete`, confirmed first.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use dynamodb_session_store::table::{STACK_ID_TAG, SessionTable};
use serde_json::json;

use crate::context::Context;
use crate::output::{Failure, count};

/// Delete the session table and every session in it
///
/// Waits until the table is gone. On a terminal it asks first: type the table's name to
/// confirm. Elsewhere (a script, CI) it refuses without --yes. A missing table is not an
/// error: nothing is deleted.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Delete without asking
    #[arg(long, short = 'y')]
    yes: bool,
}

pub async fn run(context: &Context, args: Args) -> Result<(), Failure> {
    let config = context.config(|b| b)?;
    let client = context.client().await?;
    let table = SessionTable::from_config(&config);
    let Some(existing) = table.inspect(&client).await? else {
        context.output.result(
            || format!("no table {}: nothing to delete", table.name),
            || json!({ "table": table.name, "deleted": false, "existed": false }),
        );
        return Ok(());
    };
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::Usage(format!(
                "refusing to delete table {} without --yes: standard input is not a terminal \
                 to confirm on",
                table.name
            )));
        }
        let mut prompt = format!(
            "Delete table {} ({}) and every session in it (about {} items)? This cannot be \
             undone.",
            table.name,
            existing.arn,
            count(existing.item_count.unwrap_or(0))
        );
        if let Some(stack) = existing.tags.get(STACK_ID_TAG) {
            prompt.push_str(&format!(
                "\nIt belongs to CloudFormation stack {stack}: deleting it here leaves the stack \
                 out of step."
            ));
        }
        eprint!("{prompt}\nType the table's name to confirm: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Failure::Failed(format!("cannot read the confirmation: {e}")))?;
        if answer.trim() != table.name {
            return Err(Failure::Failed(format!(
                "not confirmed: table {} was not deleted",
                table.name
            )));
        }
    }
    context.output.note(&format!(
        "sessionctl: deleting table {}; waiting until it is gone",
        table.name
    ));
    table.delete(&client).await?;
    context.output.result(
        || format!("deleted table {}", table.name),
        || json!({ "table": table.name, "deleted": true, "existed": true }),
    );
    Ok(())
}
