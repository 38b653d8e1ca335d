//! [`SqlError`]: a message with its PostgreSQL SQLSTATE code.
//!
//! Codes follow PostgreSQL's appendix A; constructors name the common ones so call
//! sites read as what went wrong (`SqlError::undefined_table("t")`).

use std::fmt;

/// A SQL error as the client sees it: SQLSTATE, message, optional detail/hint and the
/// 1-based character position in the statement text when the parser knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlError {
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub position: Option<usize>,
}

pub type SqlResult<T> = Result<T, SqlError>;

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> SqlError {
        SqlError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
            position: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> SqlError {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> SqlError {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_position(mut self, position: usize) -> SqlError {
        self.position = Some(position);
        self
    }

    /// 42601
    pub fn syntax(message: impl Into<String>) -> SqlError {
        SqlError::new(codes::SYNTAX_ERROR, message)
    }
    /// 0A000
    pub fn unsupported(message: impl Into<String>) -> SqlError {
        SqlError::new(codes::FEATURE_NOT_SUPPORTED, message)
    }
    /// XX000
    pub fn internal(message: impl Into<String>) -> SqlError {
        SqlError::new(codes::INTERNAL_ERROR, message)
    }
    /// 42P01
    pub fn undefined_table(name: &str) -> SqlError {
        SqlError::new(
            codes::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )
    }
    /// 42703
    pub fn undefined_column(name: &str) -> SqlError {
        SqlError::new(
            codes::UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist"),
        )
    }
    /// 42703, naming the relation: `column "c" of relation "t" does not exist`.
    pub fn undefined_column_of(column: &str, relation: &str) -> SqlError {
        SqlError::new(
            codes::UNDEFINED_COLUMN,
            format!("column \"{column}\" of relation \"{relation}\" does not exist"),
        )
    }
    /// 42804
    pub fn datatype_mismatch(message: impl Into<String>) -> SqlError {
        SqlError::new(codes::DATATYPE_MISMATCH, message)
    }
    /// 42883
    pub fn undefined_function(message: impl Into<String>) -> SqlError {
        SqlError::new(codes::UNDEFINED_FUNCTION, message)
    }
    /// 22012
    pub fn division_by_zero() -> SqlError {
        SqlError::new(codes::DIVISION_BY_ZERO, "division by zero")
    }
    /// 22003
    pub fn out_of_range(message: impl Into<String>) -> SqlError {
        SqlError::new(codes::NUMERIC_VALUE_OUT_OF_RANGE, message)
    }
    /// 22P02
    pub fn invalid_text(type_name: &str, text: &str) -> SqlError {
        SqlError::new(
            codes::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type {type_name}: \"{text}\""),
        )
    }
    /// 40001, with the `restart transaction:` prefix clients and drivers look for.
    pub fn restart(reason: impl fmt::Display) -> SqlError {
        SqlError::new(
            codes::SERIALIZATION_FAILURE,
            format!("restart transaction: {reason}"),
        )
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERROR: {} (SQLSTATE {})", self.message, self.code)
    }
}

impl std::error::Error for SqlError {}

/// SQLSTATE codes used by Tardigrade (PostgreSQL appendix A).
pub mod codes {
    pub const SUCCESSFUL_COMPLETION: &str = "00000";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const NULL_VALUE_NOT_ALLOWED: &str = "22004";
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_BINARY_REPRESENTATION: &str = "22P03";
    pub const INVALID_JSON_TEXT: &str = "22P05";
    pub const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
    pub const DATA_EXCEPTION: &str = "22000";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const CHECK_VIOLATION: &str = "23514";
    /// A value given for a generated or `GENERATED ALWAYS` identity column.
    pub const GENERATED_ALWAYS: &str = "428C9";
    pub const INVALID_OBJECT_DEFINITION: &str = "42P17";
    pub const INVALID_TRANSACTION_STATE: &str = "25000";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const INVALID_SCHEMA_NAME: &str = "3F000";
    pub const SAVEPOINT_EXCEPTION: &str = "3B000";
    pub const INVALID_SAVEPOINT_SPECIFICATION: &str = "3B001";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_DATABASE: &str = "42P04";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const GROUPING_ERROR: &str = "42803";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const INVALID_COLUMN_DEFINITION: &str = "42611";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const INVALID_FOREIGN_KEY: &str = "42830";
    pub const CANNOT_COERCE: &str = "42846";
    pub const UNDEFINED_DATABASE: &str = "3D000";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const STATEMENT_TOO_COMPLEX: &str = "54001";
    pub const QUERY_CANCELED: &str = "57014";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const INTERNAL_ERROR: &str = "XX000";
    /// CockroachDB's code for an error that carries none of PostgreSQL's
    /// (`pgcode.Uncategorized`): what it reports for the AS OF SYSTEM TIME
    /// evaluation errors, among others.
    pub const UNCATEGORIZED: &str = "XXUUU";
    pub const OBJECT_IN_USE: &str = "55006";
    pub const INVALID_RECURSION: &str = "42P19";
    pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
}
