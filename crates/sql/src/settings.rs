//! A session's run-time parameters (PostgreSQL's configuration parameters):
//! what `SET`, `SET LOCAL`, `RESET`, `SHOW`, `current_setting()` and
//! `set_config()` read and write.
//!
//! Takes the names and values clients set; gives each parameter's value in
//! PostgreSQL's text form (its default until set). As in PostgreSQL, values
//! set inside a transaction block are undone when the block rolls back, and
//! `SET LOCAL` values last until the block ends. Known parameters are checked
//! and normalized the way PostgreSQL does (`statement_timeout = 5000` shows as
//! `5s`); values we cannot honour yet (a time zone other than UTC, a date style
//! other than ISO) are refused with 0A000 rather than accepted and ignored.
//! A name with a dot (`myapp.tenant`) is a custom parameter and takes any
//! value; any other unknown name is 42704.
//!
//! The session owns one [`Settings`]; statements get `&Settings` and may
//! change it through `set_config()` while they run (hence the mutex).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult};

/// The parameters the session reports, with their defaults and descriptions
/// (for `SHOW ALL`). `database` is CockroachDB's.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "application_name",
        "",
        "Sets the application name to be reported in statistics and logs.",
    ),
    ("bytea_output", "hex", "Sets the output format for bytea."),
    (
        "client_encoding",
        "UTF8",
        "Sets the client's character set encoding.",
    ),
    (
        "client_min_messages",
        "notice",
        "Sets the message levels that are sent to the client.",
    ),
    ("database", "", "The current database."),
    (
        "datestyle",
        "ISO, MDY",
        "Sets the display format for date and time values.",
    ),
    (
        "default_table_access_method",
        "heap",
        "Sets the default table access method for new tables.",
    ),
    (
        "default_transaction_isolation",
        "serializable",
        "Sets the transaction isolation level of each new transaction.",
    ),
    (
        "default_transaction_read_only",
        "off",
        "Sets the default read-only status of new transactions.",
    ),
    (
        "extra_float_digits",
        "1",
        "Sets the number of digits displayed for floating-point values.",
    ),
    (
        "idle_in_transaction_session_timeout",
        "0",
        "Sets the maximum allowed idle time between queries, when in a transaction.",
    ),
    (
        "integer_datetimes",
        "on",
        "Shows whether datetimes are integer based.",
    ),
    (
        "intervalstyle",
        "postgres",
        "Sets the display format for interval values.",
    ),
    ("lc_collate", "C.UTF-8", "Shows the collation order locale."),
    (
        "lc_ctype",
        "C.UTF-8",
        "Shows the character classification and case conversion locale.",
    ),
    (
        "lock_timeout",
        "0",
        "Sets the maximum allowed duration of any wait for a lock.",
    ),
    (
        "max_identifier_length",
        "128",
        "Shows the maximum identifier length.",
    ),
    (
        "search_path",
        "\"$user\", public",
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    (
        "server_encoding",
        "UTF8",
        "Shows the server (database) character set encoding.",
    ),
    ("server_version", "15.0.0", "Shows the server version."),
    (
        "server_version_num",
        "150000",
        "Shows the server version as an integer.",
    ),
    (
        "standard_conforming_strings",
        "on",
        "Causes '...' strings to treat backslashes literally.",
    ),
    (
        "statement_timeout",
        "0",
        "Sets the maximum allowed duration of any statement.",
    ),
    (
        "timezone",
        "UTC",
        "Sets the time zone for displaying and interpreting time stamps.",
    ),
    (
        "transaction_isolation",
        "serializable",
        "Shows the current transaction's isolation level.",
    ),
    (
        "transaction_read_only",
        "off",
        "Shows whether the current transaction is read-only.",
    ),
];

/// The open transaction's access mode (`BEGIN READ ONLY`, `SET
/// TRANSACTION READ ONLY`).
const TXN_READ_ONLY: &str = "transaction_read_only";

/// Parameters a client cannot change.
const READ_ONLY: &[&str] = &[
    "database",
    "integer_datetimes",
    "lc_collate",
    "lc_ctype",
    "max_identifier_length",
    "server_encoding",
    "server_version",
    "server_version_num",
];

/// The changeable parameters a server reports to the client (ParameterStatus)
/// at startup and whenever they change, as PostgreSQL does for its
/// `GUC_REPORT` ones: (name, the name on the wire).
pub const REPORTED: &[(&str, &str)] = &[
    ("application_name", "application_name"),
    ("client_encoding", "client_encoding"),
    ("datestyle", "DateStyle"),
    ("intervalstyle", "IntervalStyle"),
    ("standard_conforming_strings", "standard_conforming_strings"),
    ("timezone", "TimeZone"),
];

/// A session's parameters.
pub struct Settings {
    inner: Mutex<Inner>,
    /// Bumped by every change, so that the front end knows when to look
    /// for parameters to report.
    generation: AtomicU64,
    /// The session's identity as a holder of advisory locks
    /// ([`crate::advisory`]); the executor sees the session through its
    /// settings.
    session_id: u64,
    /// The values `nextval` last gave this session, for `currval` and
    /// `lastval`.
    sequences: Mutex<SequenceValues>,
}

/// A session's `currval` (by sequence id) and `lastval` values.
#[derive(Default)]
struct SequenceValues {
    current: std::collections::HashMap<u32, i64>,
    last: Option<i64>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            inner: Default::default(),
            generation: Default::default(),
            session_id: crate::advisory::new_session_id(),
            sequences: Default::default(),
        }
    }
}

#[derive(Default, Clone)]
struct Inner {
    /// Values the client gave at connection start: what RESET goes back to.
    startup: BTreeMap<String, String>,
    /// Values set for the session.
    session: BTreeMap<String, String>,
    /// `SET LOCAL` values of the open block; they shadow `session`.
    local: BTreeMap<String, String>,
    /// `session` as it was when the open block first changed it, restored
    /// if the block rolls back.
    saved: Option<BTreeMap<String, String>>,
    /// A transaction block is open.
    in_block: bool,
    /// The open transaction reads AS OF SYSTEM TIME ([`Settings::set_historical`]).
    historical: bool,
}

impl Settings {
    /// The value of `name` (any case; `"time zone"` and `"transaction
    /// isolation level"` are accepted as SHOW spells them). `None` when there
    /// is no such parameter (42704).
    pub fn get(&self, name: &str, database: &str) -> Option<String> {
        let name = canonical_name(name);
        if name == "database" {
            return Some(database.to_string());
        }
        let inner = self.inner.lock();
        if name == TXN_READ_ONLY && inner.historical {
            return Some("on".to_string());
        }
        // Outside a block, the mode the next transaction will have.
        let name = if name == TXN_READ_ONLY && !inner.in_block {
            "default_transaction_read_only".to_string()
        } else {
            name
        };
        if let Some(v) = inner
            .local
            .get(&name)
            .or_else(|| inner.session.get(&name))
            .or_else(|| inner.startup.get(&name))
        {
            return Some(v.clone());
        }
        default_value(&name).map(str::to_string)
    }

    /// Like [`Settings::get`], but unknown names are error 42704.
    pub fn show(&self, name: &str, database: &str) -> SqlResult<String> {
        self.get(name, database)
            .ok_or_else(|| unrecognized(&canonical_name(name)))
    }

    /// Sets `name` to `value` (`None`: back to its default) and gives the
    /// value as stored. `local` (SET LOCAL, `set_config(…, true)`) lasts
    /// until the end of the open block, and does nothing outside one, as in
    /// PostgreSQL.
    pub fn set(&self, name: &str, value: Option<&str>, local: bool) -> SqlResult<String> {
        let name = canonical_name(name);
        if READ_ONLY.contains(&name.as_str()) {
            return Err(SqlError::new(
                codes::CANT_CHANGE_RUNTIME_PARAM,
                format!("parameter \"{name}\" cannot be changed"),
            ));
        }
        let mut inner = self.inner.lock();
        let value = match value {
            Some(v) => normalize(&name, v)?,
            None => match (inner.startup.get(&name), default_value(&name)) {
                (Some(v), _) => v.clone(),
                (None, Some(d)) => d.to_string(),
                (None, None) if name.contains('.') => String::new(),
                (None, None) => return Err(unrecognized(&name)),
            },
        };
        let in_block = inner.in_block;
        if name == TXN_READ_ONLY && inner.historical && value != "on" {
            return Err(SqlError::syntax(
                "AS OF SYSTEM TIME specified with READ WRITE mode",
            ));
        }
        // The open transaction's mode: it ends with the transaction, and
        // outside a block it sets nothing (PostgreSQL warns).
        if name == TXN_READ_ONLY {
            if in_block {
                inner.local.insert(name, value.clone());
                self.generation.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(value);
        }
        if local {
            if in_block {
                inner.local.insert(name, value.clone());
                self.generation.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(value);
        }
        if in_block && inner.saved.is_none() {
            inner.saved = Some(inner.session.clone());
        }
        inner.local.remove(&name);
        inner.session.insert(name, value.clone());
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(value)
    }

    /// Sets `name` as the client's startup packet did: the value RESET
    /// returns to.
    pub fn set_startup(&self, name: &str, value: &str) -> SqlResult<()> {
        let name = canonical_name(name);
        if READ_ONLY.contains(&name.as_str()) {
            return Err(SqlError::new(
                codes::CANT_CHANGE_RUNTIME_PARAM,
                format!("parameter \"{name}\" cannot be changed"),
            ));
        }
        let value = normalize(&name, value)?;
        self.inner.lock().startup.insert(name, value);
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// RESET ALL: every parameter back to its value at connection start.
    pub fn reset_all(&self) {
        let mut inner = self.inner.lock();
        if inner.in_block && inner.saved.is_none() {
            inner.saved = Some(inner.session.clone());
        }
        inner.session.clear();
        // The transaction's mode is no setting RESET ALL resets.
        let read_only = inner.local.remove(TXN_READ_ONLY);
        inner.local.clear();
        if let Some(v) = read_only {
            inner.local.insert(TXN_READ_ONLY.to_string(), v);
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// A transaction block began (BEGIN): it is read-only when
    /// `default_transaction_read_only` is on, until BEGIN's or SET
    /// TRANSACTION's mode changes it.
    pub fn begin_block(&self) {
        let default = self
            .get("default_transaction_read_only", "")
            .unwrap_or_else(|| "off".to_string());
        let mut inner = self.inner.lock();
        inner.in_block = true;
        inner.local.insert(TXN_READ_ONLY.to_string(), default);
    }

    /// Whether the open transaction (outside a block: the next implicit
    /// one) is read-only: writes then fail with 25006.
    pub fn read_only(&self) -> bool {
        self.get(TXN_READ_ONLY, "").as_deref() == Some("on")
    }

    /// The open transaction (a block, or the implicit one of a statement)
    /// reads AS OF SYSTEM TIME, or no longer does ([`crate::asof`]): while
    /// it does it is read-only, and cannot be made read-write (42601). A
    /// block's ends with the block.
    pub fn set_historical(&self, on: bool) {
        self.inner.lock().historical = on;
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The transaction block ended: SET LOCAL values end with it, and a
    /// rollback undoes the block's SETs.
    pub fn end_block(&self, committed: bool) {
        let mut inner = self.inner.lock();
        inner.in_block = false;
        inner.historical = false;
        inner.local.clear();
        self.generation.fetch_add(1, Ordering::Relaxed);
        if let Some(saved) = inner.saved.take()
            && !committed
        {
            inner.session = saved;
        }
    }

    /// A number that changes whenever a parameter may have.
    /// The session's identity as a holder of advisory locks.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Records a value `nextval` gave (`last`: and for `lastval`; `setval`
    /// sets only `currval`).
    pub fn record_sequence_value(&self, sequence: u32, value: i64, last: bool) {
        let mut s = self.sequences.lock();
        s.current.insert(sequence, value);
        if last {
            s.last = Some(value);
        }
    }

    /// `currval`: the value `nextval` last gave this session for
    /// `sequence` (55000 before the first).
    pub fn currval(&self, sequence: u32, name: &str) -> SqlResult<i64> {
        self.sequences
            .lock()
            .current
            .get(&sequence)
            .copied()
            .ok_or_else(|| {
                SqlError::new(
                    codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("currval of sequence \"{name}\" is not yet defined in this session"),
                )
            })
    }

    /// `lastval`: the value `nextval` last gave this session, whatever the
    /// sequence (55000 before the first).
    pub fn lastval(&self) -> SqlResult<i64> {
        self.sequences.lock().last.ok_or_else(|| {
            SqlError::new(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "lastval is not yet defined in this session",
            )
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// The values of the [`REPORTED`] parameters, by their wire names.
    pub fn reported(&self) -> Vec<(&'static str, String)> {
        REPORTED
            .iter()
            .map(|(name, wire)| (*wire, self.get(name, "").unwrap_or_default()))
            .collect()
    }

    /// `statement_timeout`, when one is set.
    pub fn statement_timeout(&self) -> Option<Duration> {
        let v = self.get("statement_timeout", "")?;
        let ms = parse_duration_ms(&v)?;
        (ms > 0).then(|| Duration::from_millis(ms as u64))
    }

    /// Every known parameter and every custom one set: (name, value,
    /// description), by name, for `SHOW ALL`.
    pub fn all(&self, database: &str) -> Vec<(String, String, String)> {
        let mut out: Vec<(String, String, String)> = KNOWN
            .iter()
            .map(|(n, _, d)| {
                (
                    n.to_string(),
                    self.get(n, database).unwrap_or_default(),
                    d.to_string(),
                )
            })
            .collect();
        let inner = self.inner.lock();
        for (n, v) in inner.session.iter().chain(inner.local.iter()) {
            if n.contains('.') && !out.iter().any(|(m, _, _)| m == n) {
                out.push((n.clone(), v.clone(), String::new()));
            }
        }
        out.sort();
        out
    }
}

/// A parameter's default, `None` for an unknown one.
pub fn default_value(name: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, default, _)| *default)
}

/// Lower case, with SHOW's spellings of two parameters mapped to theirs.
pub fn canonical_name(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        "time zone" => "timezone".to_string(),
        "transaction isolation level" => "transaction_isolation".to_string(),
        "session_authorization" | "session authorization" => "session_authorization".to_string(),
        _ => name,
    }
}

/// Error 25006: `what` (`INSERT`, `nextval()`) in a read-only transaction.
pub fn read_only_error(what: &str) -> SqlError {
    SqlError::new(
        codes::READ_ONLY_SQL_TRANSACTION,
        format!("cannot execute {what} in a read-only transaction"),
    )
}

/// The setting `SHOW` names: `SHOW transaction isolation level`, or `SHOW
/// myapp.tenant` (which the parser also splits into words).
pub fn shown_name(
    variable: &[sqlparser::ast::Ident],
    database: &str,
    settings: &Settings,
) -> String {
    let words: Vec<String> = variable.iter().map(|i| i.value.to_lowercase()).collect();
    let name = words.join(" ");
    if words.len() > 1 && settings.get(&name, database).is_none() {
        return words.join(".");
    }
    name
}

/// The names of the columns `SHOW variable` returns (all text): known
/// before it runs, for Describe.
pub fn show_column_names(variable: &[sqlparser::ast::Ident], database: &str) -> Vec<String> {
    if shown_name(variable, database, &Settings::default()) == "all" {
        vec!["name".to_string(), "setting".into(), "description".into()]
    } else {
        vec![display_name(&shown_name(
            variable,
            database,
            &Settings::default(),
        ))]
    }
}

/// The column name SHOW gives parameter `name`: its canonical spelling
/// (`TimeZone`, `DateStyle`, `transaction_isolation`), as in PostgreSQL.
pub fn display_name(name: &str) -> String {
    let name = canonical_name(name);
    match REPORTED.iter().find(|(n, _)| *n == name) {
        Some((_, wire)) => wire.to_string(),
        None => name.replace(' ', "_"),
    }
}

/// Error 42704 for parameter `name`.
pub fn unrecognized(name: &str) -> SqlError {
    SqlError::new(
        codes::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

fn invalid(name: &str, value: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_PARAMETER_VALUE,
        format!("invalid value for parameter \"{name}\": \"{value}\""),
    )
}

fn not_yet(name: &str, value: &str, what: &str) -> SqlError {
    SqlError::new(
        codes::FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported: cannot set parameter \"{name}\" to \"{value}\""),
    )
}

/// `value` checked and in the form SHOW prints for `name`.
fn normalize(name: &str, value: &str) -> SqlResult<String> {
    let v = value.trim();
    Ok(match name {
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
            let ms = parse_duration_ms(v).ok_or_else(|| invalid(name, value))?;
            if ms < 0 {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    format!("{ms} ms is outside the valid range for parameter \"{name}\""),
                ));
            }
            format_duration_ms(ms)
        }
        "timezone" => {
            // TODO(issue 13): other time zones (timestamptz output and AT TIME
            // ZONE in the session's zone, from the system's tz database).
            let lower = v.to_ascii_lowercase();
            let utc = [
                "utc",
                "gmt",
                "etc/utc",
                "etc/gmt",
                "universal",
                "zulu",
                "z",
                "0",
                "+0",
                "-0",
                "+00",
                "+00:00",
                "00:00",
            ];
            if utc.contains(&lower.as_str()) {
                if lower == "gmt" || lower == "etc/gmt" {
                    "GMT".to_string()
                } else if lower.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
                    "<+00>-00".to_string()
                } else {
                    "UTC".to_string()
                }
            } else if lower == "local" || lower == "default" {
                "UTC".to_string()
            } else {
                return Err(not_yet(name, value, "a time zone other than UTC"));
            }
        }
        "datestyle" => {
            let mut order = "MDY";
            for part in v.split(',').map(|p| p.trim().to_ascii_uppercase()) {
                match part.as_str() {
                    "ISO" | "" => {}
                    "MDY" | "US" | "NONEURO" | "NONEUROPEAN" => order = "MDY",
                    // TODO(issue 13): DMY and YMD orders for reading
                    // ambiguous dates.
                    "DMY" | "YMD" | "EURO" | "EUROPEAN" => {
                        return Err(not_yet(name, value, "a date order other than MDY"));
                    }
                    "SQL" | "POSTGRES" | "GERMAN" => {
                        return Err(not_yet(name, value, "a date style other than ISO"));
                    }
                    _ => return Err(invalid(name, value)),
                }
            }
            format!("ISO, {order}")
        }
        "intervalstyle" => match v.to_ascii_lowercase().as_str() {
            "postgres" => "postgres".to_string(),
            "postgres_verbose" | "sql_standard" | "iso_8601" => {
                return Err(not_yet(
                    name,
                    value,
                    "an interval style other than postgres",
                ));
            }
            _ => return Err(invalid(name, value)),
        },
        "client_encoding" => match v.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
            "UTF8" | "UNICODE" => "UTF8".to_string(),
            _ => {
                return Err(SqlError::new(
                    codes::FEATURE_NOT_SUPPORTED,
                    format!("conversion between {v} and UTF8 is not supported"),
                ));
            }
        },
        "extra_float_digits" => {
            let n: i64 = v.parse().map_err(|_| invalid(name, value))?;
            if !(-15..=3).contains(&n) {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    format!("{n} is outside the valid range for parameter \"{name}\" (-15 .. 3)"),
                ));
            }
            // TODO(issue 13): n <= 0 rounds floats to 15 + n digits; floats
            // print in their shortest exact form (n >= 1) whatever it is.
            n.to_string()
        }
        "standard_conforming_strings" => match parse_bool(v) {
            Some(true) => "on".to_string(),
            Some(false) => return Err(not_yet(name, value, "backslash escapes in '…' strings")),
            None => return Err(invalid(name, value)),
        },
        "default_transaction_read_only" | "transaction_read_only" => match parse_bool(v) {
            Some(false) => "off".to_string(),
            Some(true) => "on".to_string(),
            None => return Err(invalid(name, value)),
        },
        "default_transaction_isolation" | "transaction_isolation" => {
            // As CockroachDB: every level runs as SERIALIZABLE, the strongest.
            match v.to_ascii_lowercase().as_str() {
                "serializable" | "repeatable read" | "read committed" | "read uncommitted" => {
                    "serializable".to_string()
                }
                _ => return Err(invalid(name, value)),
            }
        }
        "bytea_output" => match v.to_ascii_lowercase().as_str() {
            "hex" => "hex".to_string(),
            "escape" => return Err(not_yet(name, value, "bytea escape output")),
            _ => return Err(invalid(name, value)),
        },
        "client_min_messages" => match v.to_ascii_lowercase().as_str() {
            l @ ("debug5" | "debug4" | "debug3" | "debug2" | "debug1" | "debug" | "log"
            | "notice" | "warning" | "error") => l.to_string(),
            _ => return Err(invalid(name, value)),
        },
        // PostgreSQL truncates it to NAMEDATALEN - 1 bytes.
        "application_name" => truncate_utf8(v, 63).to_string(),
        // TODO(issue 13): name resolution through the search path (today
        // unqualified names are looked up in `public` then the catalogs).
        "search_path" => v.to_string(),
        n if n.contains('.') => value.to_string(),
        _ => return Err(unrecognized(name)),
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Milliseconds from PostgreSQL's duration syntax: a number (milliseconds)
/// or a number with a unit (`us`, `ms`, `s`, `min`, `h`, `d`).
pub fn parse_duration_ms(v: &str) -> Option<i64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: f64 = number.trim().parse().ok()?;
    let per_unit = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = (n * per_unit).round();
    if !ms.is_finite() || ms.abs() > i32::MAX as f64 {
        return None;
    }
    Some(ms as i64)
}

/// As PostgreSQL prints a duration in milliseconds: in the largest unit
/// that divides it.
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0".to_string();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_as_postgresql_does() {
        assert_eq!(parse_duration_ms("5000"), Some(5000));
        assert_eq!(parse_duration_ms("5s"), Some(5000));
        assert_eq!(parse_duration_ms("1.5s"), Some(1500));
        assert_eq!(parse_duration_ms("2min"), Some(120_000));
        assert_eq!(parse_duration_ms("abc"), None);
        assert_eq!(parse_duration_ms("5 parsecs"), None);
        assert_eq!(format_duration_ms(5000), "5s");
        assert_eq!(format_duration_ms(1500), "1500ms");
        assert_eq!(format_duration_ms(3_600_000), "1h");
        assert_eq!(format_duration_ms(0), "0");
    }

    #[test]
    fn a_rolled_back_block_undoes_its_sets_and_local_ones_end_with_it() {
        let s = Settings::default();
        s.set("application_name", Some("before"), false).unwrap();
        s.begin_block();
        s.set("application_name", Some("inside"), false).unwrap();
        s.set("statement_timeout", Some("1s"), true).unwrap();
        assert_eq!(s.get("statement_timeout", "d").unwrap(), "1s");
        s.end_block(false);
        assert_eq!(s.get("application_name", "d").unwrap(), "before");
        assert_eq!(s.get("statement_timeout", "d").unwrap(), "0");
        s.begin_block();
        s.set("application_name", Some("kept"), false).unwrap();
        s.set("lock_timeout", Some("2s"), true).unwrap();
        s.end_block(true);
        assert_eq!(s.get("application_name", "d").unwrap(), "kept");
        assert_eq!(s.get("lock_timeout", "d").unwrap(), "0");
        // Outside a block SET LOCAL does nothing.
        s.set("lock_timeout", Some("2s"), true).unwrap();
        assert_eq!(s.get("lock_timeout", "d").unwrap(), "0");
    }

    #[test]
    fn reset_returns_to_the_value_given_at_connection_start() {
        let s = Settings::default();
        s.set_startup("application_name", "psql").unwrap();
        s.set("application_name", Some("other"), false).unwrap();
        s.reset_all();
        assert_eq!(s.get("application_name", "d").unwrap(), "psql");
        s.set("application_name", Some("other"), false).unwrap();
        s.set("application_name", None, false).unwrap();
        assert_eq!(s.get("application_name", "d").unwrap(), "psql");
        assert!(s.set_startup("server_version", "1").is_err());
    }

    #[test]
    fn unknown_read_only_and_unsupported_values_are_errors() {
        let s = Settings::default();
        let code = |r: SqlResult<String>| r.unwrap_err().code;
        assert_eq!(code(s.set("no_such", Some("1"), false)), "42704");
        assert_eq!(code(s.set("server_version", Some("1"), false)), "55P02");
        assert_eq!(
            code(s.set("timezone", Some("Mars/Olympus"), false)),
            "0A000"
        );
        assert_eq!(
            code(s.set("statement_timeout", Some("soon"), false)),
            "22023"
        );
        assert_eq!(s.set("myapp.tenant", Some("42"), false).unwrap(), "42");
        assert_eq!(s.get("MyApp.Tenant", "d").unwrap(), "42");
        assert!(s.get("other.unset", "d").is_none());
    }
}
