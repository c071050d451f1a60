//! The custom resource's `ResourceProperties`, checked and turned into a [`SessionTable`] and
//! the adoption flag.
//!
//! CloudFormation passes every scalar property as a string (`ReadCapacity: 10` arrives as
//! `"10"`), so numbers are accepted both as JSON numbers and as strings.

use dynamodb_session_store::config::BillingMode;
use dynamodb_session_store::table::SessionTable;
use serde_json::{Map, Value};

/// Properties CloudFormation itself adds to every custom resource request.
const SERVICE_PROPERTIES: [&str; 2] = ["ServiceToken", "ServiceTimeout"];

/// The properties this resource understands.
const TABLE_PROPERTIES: [&str; 7] = [
    "TableName",
    "TableKey",
    "BillingMode",
    "ReadCapacity",
    "WriteCapacity",
    "TimeToLiveAttribute",
    "AdoptExisting",
];

/// Key attribute when `TableKey` is not given (the library's default).
pub const DEFAULT_TABLE_KEY: &str = "session_id";

/// A property that cannot be used; its message is the `Reason` CloudFormation shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid property {property}: {reason}")]
pub struct InvalidProperty {
    /// The property's name, e.g. `BillingMode`.
    pub property: String,
    /// Why it was refused.
    pub reason: String,
}

impl InvalidProperty {
    fn new(property: &str, reason: impl Into<String>) -> Self {
        InvalidProperty {
            property: property.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What a request's `ResourceProperties` ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties {
    /// The table (`TableName`, `TableKey`, `BillingMode`, capacities, TTL attribute).
    pub table: SessionTable,
    /// `AdoptExisting`: whether a table of that name that this resource did not create may
    /// be taken over. On Create the adopted table is waited for until active and gets TTL
    /// and the user index; its billing is left as it is (an Update that keeps the
    /// `TableName` applies the template's). Such a table is never deleted by the resource.
    /// Default `false`: an existing table fails the Create.
    pub adopt_existing: bool,
}

/// Checks `properties` (a request's `ResourceProperties`): the table they describe, and
/// `AdoptExisting` (`true` or `false`, as a string or a JSON boolean; empty or absent means
/// `false`).
///
/// `TableName` is required; `TableKey` defaults to `session_id`, `BillingMode` to
/// `PAY_PER_REQUEST`, `TimeToLiveAttribute` to `expire_at`, and a provisioned table's
/// `ReadCapacity`/`WriteCapacity` to the library's 10/5. An optional property given as an
/// empty string counts as not given, so templates can pass empty parameters through.
/// Unknown properties are refused: a misspelt `BilingMode` must not silently mean on-demand.
///
/// # Examples
///
/// ```
/// use dynamodb_session_store::config::BillingMode;
/// use serde_json::json;
///
/// let properties = session_table::parse_properties(&json!({
///     "TableName": "sessions",
///     "AdoptExisting": "true",
/// }))
/// .unwrap();
/// assert!(properties.adopt_existing);
/// assert_eq!(properties.table.name, "sessions");
///
/// let table = session_table::parse_properties(&json!({
///     "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:session-table",
///     "TableName": "sessions",
///     "BillingMode": "PROVISIONED",
///     "ReadCapacity": "20",
///     "WriteCapacity": "10",
/// }))
/// .unwrap()
/// .table;
/// assert_eq!(table.name, "sessions");
/// assert_eq!(table.billing_mode, BillingMode::Provisioned);
/// assert_eq!((table.read_capacity, table.write_capacity), (20, 10));
/// ```
///
/// # Errors
///
/// [`InvalidProperty`] naming the first property that cannot be used.
pub fn parse_properties(properties: &Value) -> Result<Properties, InvalidProperty> {
    let table = table_from_properties(properties)?;
    let adopt_existing = match properties.get("AdoptExisting") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(adopt)) => *adopt,
        Some(Value::String(s)) if s.trim().is_empty() => false,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(InvalidProperty::new(
                "AdoptExisting",
                format!("{other} is neither true nor false"),
            ));
        }
    };
    Ok(Properties {
        table,
        adopt_existing,
    })
}

/// The table `properties` describe, as [`parse_properties`] documents; `AdoptExisting` is
/// accepted as a known property but not checked here, so use [`parse_properties`].
///
/// # Errors
///
/// [`InvalidProperty`] naming the first property that cannot be used.
pub(crate) fn table_from_properties(properties: &Value) -> Result<SessionTable, InvalidProperty> {
    let properties = properties
        .as_object()
        .ok_or_else(|| InvalidProperty::new("ResourceProperties", "expected an object"))?;
    if let Some(unknown) = properties.keys().find(|k| {
        !TABLE_PROPERTIES.contains(&k.as_str()) && !SERVICE_PROPERTIES.contains(&k.as_str())
    }) {
        return Err(InvalidProperty::new(
            unknown,
            format!(
                "unknown property; expected one of {}",
                TABLE_PROPERTIES.join(", ")
            ),
        ));
    }

    let name = optional_string(properties, "TableName")?
        .ok_or_else(|| InvalidProperty::new("TableName", "is required"))?;
    if !is_valid_table_name(name) {
        return Err(InvalidProperty::new(
            "TableName",
            format!(
                "{name:?} is not a DynamoDB table name (3 to 255 characters of a-z, A-Z, 0-9, \
                 '_', '-' and '.')"
            ),
        ));
    }
    let mut table = SessionTable::new(name);
    if let Some(key) = optional_string(properties, "TableKey")? {
        table = table.key(attribute_name("TableKey", key)?);
    }
    if let Some(attribute) = optional_string(properties, "TimeToLiveAttribute")? {
        table = table.ttl_attribute(attribute_name("TimeToLiveAttribute", attribute)?);
    }
    let billing_mode = match optional_string(properties, "BillingMode")? {
        Some(mode) => mode
            .parse::<BillingMode>()
            .map_err(|reason| InvalidProperty::new("BillingMode", format!("{mode:?}: {reason}")))?,
        None => BillingMode::PayPerRequest,
    };
    // Capacities are checked even for on-demand tables, where they are not used, so a typo
    // surfaces before someone switches the table to PROVISIONED.
    let read_capacity = optional_capacity(properties, "ReadCapacity")?;
    let write_capacity = optional_capacity(properties, "WriteCapacity")?;
    let read_capacity = read_capacity.unwrap_or(table.read_capacity);
    let write_capacity = write_capacity.unwrap_or(table.write_capacity);
    Ok(table.billing_mode(billing_mode, read_capacity, write_capacity))
}

/// The `TableKey` of a request's properties as far as it can be read, else the default.
/// For `OldResourceProperties`, which were accepted once and need no second verdict.
pub fn table_key_of(properties: &Value) -> &str {
    properties
        .get("TableKey")
        .and_then(Value::as_str)
        .filter(|key| !key.is_empty())
        .unwrap_or(DEFAULT_TABLE_KEY)
}

/// Whether `name` follows DynamoDB's table naming rules: 3 to 255 characters of `a-z`,
/// `A-Z`, `0-9`, `_`, `-` and `.`.
///
/// # Examples
///
/// ```
/// assert!(session_table::is_valid_table_name("my-app.sessions_v2"));
/// assert!(!session_table::is_valid_table_name("create-failed:1234"));
/// ```
pub fn is_valid_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn optional_string<'a>(
    properties: &'a Map<String, Value>,
    property: &str,
) -> Result<Option<&'a str>, InvalidProperty> {
    match properties.get(property) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim())),
        Some(other) => Err(InvalidProperty::new(
            property,
            format!("expected a string, got {other}"),
        )),
    }
}

fn optional_capacity(
    properties: &Map<String, Value>,
    property: &str,
) -> Result<Option<i64>, InvalidProperty> {
    let units = match properties.get(property) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        Some(_) => None,
    };
    match units {
        Some(units) if units >= 1 => Ok(Some(units)),
        _ => Err(InvalidProperty::new(
            property,
            format!(
                "{} is not a positive whole number of capacity units",
                properties[property]
            ),
        )),
    }
}

fn attribute_name<'a>(property: &str, name: &'a str) -> Result<&'a str, InvalidProperty> {
    // DynamoDB's limit for key attribute names.
    if name.len() > 255 {
        return Err(InvalidProperty::new(
            property,
            "attribute names are at most 255 bytes long",
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(properties: Value) -> InvalidProperty {
        table_from_properties(&properties).unwrap_err()
    }

    #[test]
    fn only_the_table_name_is_required() {
        let table = table_from_properties(&json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "TableName": "sessions",
        }))
        .unwrap();
        assert_eq!(table, SessionTable::new("sessions"));
        assert_eq!(table.key, DEFAULT_TABLE_KEY);
        assert_eq!(table.ttl_attribute, "expire_at");
        assert_eq!(table.billing_mode, BillingMode::PayPerRequest);
    }

    #[test]
    fn numbers_arrive_as_strings_or_numbers() {
        let table = table_from_properties(&json!({
            "TableName": "sessions",
            "TableKey": "sid",
            "BillingMode": "provisioned",
            "ReadCapacity": " 7 ",
            "WriteCapacity": 3,
            "TimeToLiveAttribute": "gone_at",
            "ServiceTimeout": "300",
        }))
        .unwrap();
        assert_eq!(
            table,
            SessionTable::new("sessions")
                .key("sid")
                .ttl_attribute("gone_at")
                .billing_mode(BillingMode::Provisioned, 7, 3)
        );
    }

    #[test]
    fn empty_optional_properties_mean_the_defaults() {
        let table = table_from_properties(&json!({
            "TableName": "sessions",
            "TableKey": "",
            "BillingMode": "",
            "ReadCapacity": "",
            "TimeToLiveAttribute": "",
        }))
        .unwrap();
        assert_eq!(table, SessionTable::new("sessions"));
    }

    #[test]
    fn bad_properties_are_named_with_a_reason() {
        let missing = refused(json!({"ServiceToken": "arn"}));
        assert_eq!(
            missing.to_string(),
            "invalid property TableName: is required"
        );

        let blank = refused(json!({"TableName": "  "}));
        assert_eq!(blank.property, "TableName");

        let bad_name = refused(json!({"TableName": "no spaces allowed"}));
        assert!(
            bad_name.reason.contains("not a DynamoDB table name"),
            "{bad_name}"
        );

        let bad_mode = refused(json!({"TableName": "sessions", "BillingMode": "FREE"}));
        assert_eq!(bad_mode.property, "BillingMode");
        assert!(bad_mode.reason.contains("\"FREE\""), "{bad_mode}");
        assert!(bad_mode.reason.contains("PAY_PER_REQUEST"), "{bad_mode}");

        for capacity in [json!("0"), json!("ten"), json!(-1), json!(1.5), json!(true)] {
            let err = refused(json!({"TableName": "sessions", "ReadCapacity": capacity}));
            assert_eq!(err.property, "ReadCapacity", "{capacity}");
        }

        let typo = refused(json!({"TableName": "sessions", "BilingMode": "PROVISIONED"}));
        assert_eq!(typo.property, "BilingMode");
        assert!(typo.reason.contains("unknown property"), "{typo}");

        let not_a_string = refused(json!({"TableName": ["sessions"]}));
        assert_eq!(not_a_string.property, "TableName");

        let not_an_object = refused(json!("sessions"));
        assert_eq!(not_an_object.property, "ResourceProperties");
    }

    #[test]
    fn adopt_existing_is_false_unless_set_to_true() {
        let adopt = |value: Value| {
            parse_properties(&json!({"TableName": "sessions", "AdoptExisting": value}))
                .map(|p| p.adopt_existing)
        };
        assert!(
            !parse_properties(&json!({"TableName": "sessions"}))
                .unwrap()
                .adopt_existing
        );
        for yes in [json!(true), json!("true"), json!(" TRUE ")] {
            assert_eq!(adopt(yes.clone()), Ok(true), "{yes}");
        }
        for no in [json!(false), json!("false"), json!(""), Value::Null] {
            assert_eq!(adopt(no.clone()), Ok(false), "{no}");
        }
        for bad in [json!("yes"), json!(1), json!(["true"])] {
            let err = adopt(bad.clone()).unwrap_err();
            assert_eq!(err.property, "AdoptExisting", "{bad}");
        }
    }

    #[test]
    fn table_names_follow_dynamodb_rules() {
        assert!(is_valid_table_name("abc"));
        assert!(is_valid_table_name(&"a".repeat(255)));
        assert!(!is_valid_table_name("ab"));
        assert!(!is_valid_table_name(&"a".repeat(256)));
        assert!(!is_valid_table_name("sessions/other"));
        assert!(!is_valid_table_name("séssions"));
    }

    #[test]
    fn the_old_key_defaults_like_the_new_one() {
        assert_eq!(table_key_of(&json!({"TableKey": "sid"})), "sid");
        assert_eq!(table_key_of(&json!({"TableKey": ""})), DEFAULT_TABLE_KEY);
        assert_eq!(table_key_of(&json!({})), DEFAULT_TABLE_KEY);
        assert_eq!(table_key_of(&Value::Null), DEFAULT_TABLE_KEY);
    }
}
