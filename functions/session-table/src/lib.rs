//! The session table's CloudFormation custom resource (`Custom::SessionTable`).
//!
//! A Lambda handler for CloudFormation's Create, Update and Delete requests that manages the
//! session table with the library's own [`SessionTable`](dynamodb_session_store::table::SessionTable)
//! (on-demand or provisioned, TTL on `expire_at`), and always answers CloudFormation:
//! bad properties, DynamoDB errors, panics and an approaching deadline all end in a FAILED
//! answer with a reason rather than in silence.
//!
//! | property | default | |
//! |---|---|---|
//! | `TableName` | required | the table; also the resource's physical id |
//! | `TableKey` | `session_id` | hash key attribute (type S) |
//! | `BillingMode` | `PAY_PER_REQUEST` | or `PROVISIONED` |
//! | `ReadCapacity` / `WriteCapacity` | 10 / 5 | provisioned tables only |
//! | `TimeToLiveAttribute` | `expire_at` | the attribute DynamoDB's TTL reads |
//! | `AdoptExisting` | `false` | take over an existing table this resource did not create |
//!
//! `!GetAtt` reads `TableName` and `TableArn`.
//!
//! The resource touches only its own table: a table it creates carries the tags
//! [`STACK_ID_TAG`] (the stack's id) and [`LOGICAL_ID_TAG`] (the resource's logical id), and
//! only a table carrying both is ever deleted. An existing table without them fails the
//! Create, unchanged, unless `AdoptExisting` is `true`; an adopted table is never deleted.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod handler;
mod properties;
mod response;

pub use handler::{
    CREATE_FAILED_PREFIX, Handler, LOGICAL_ID_TAG, Options, Request, STACK_ID_TAG, http_client,
};
pub use properties::{
    DEFAULT_TABLE_KEY, InvalidProperty, Properties, is_valid_table_name, parse_properties,
    table_key_of,
};
pub use response::{Delivery, DeliveryFailed, Echo, Outcome, deliver, describe, response_body};
