//! [`SqlType`]: the types a column or an expression can have.

use std::fmt;

/// A SQL type. `Unknown` is the type of a bare `NULL` literal or an untyped parameter
/// before inference gives it one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqlType {
    Unknown,
    Bool,
    /// SMALLINT
    Int2,
    /// INTEGER / INT4
    Int4,
    /// BIGINT / INT8, and INT (8 bytes, as in CockroachDB)
    Int8,
    /// REAL
    Float4,
    /// DOUBLE PRECISION / FLOAT
    Float8,
    /// DECIMAL/NUMERIC with optional (precision, scale).
    Decimal(Option<(u16, u16)>),
    /// TEXT / STRING
    Text,
    /// VARCHAR(n); `None` is unbounded.
    Varchar(Option<u32>),
    /// CHAR(n) (blank-padded).
    Char(u32),
    Bytes,
    Date,
    /// TIME (without time zone): a time of day.
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Jsonb,
    /// OID: an unsigned 4-byte object identifier (PostgreSQL's `oid`), held
    /// as an integer value in `0..=u32::MAX`. The catalog tables' identifier
    /// columns have this type; integers cast to it and compare with it.
    Oid,
    /// `regclass`: a relation's OID (an integer value, as [`SqlType::Oid`])
    /// that prints as the relation's name. The binder resolves names both
    /// ways (`sql::plan::bind`); a value whose name it looked up for output
    /// is the pair `[oid, name]` ([`Value::Array`](crate::Value::Array)),
    /// sent as the name in text format and as the OID in binary format.
    RegClass,
    /// `regtype`: a type's OID (an integer value, as [`SqlType::Oid`]) that
    /// reads and prints as the type's name (`'int4'::regtype` is `integer`).
    RegType,
    /// INET: an IPv4 or IPv6 host address with an optional netmask length,
    /// held as `Value::Bytes` of [family (4 or 6), address bytes, mask
    /// length], so that values sort by family, then address, then mask.
    Inet,
    /// `int2vector` (the catalogs' `pg_index.indoption`): an array of
    /// smallints, printed space-separated (`0 3`) and sent with OID 22; it
    /// is an array for functions and casts (`unnest`, `::int2[]`), as
    /// PostgreSQL's is.
    Int2Vector,
    /// A one-dimensional array of the element type (never itself an array: like
    /// PostgreSQL, `int[][]` is the same type as `int[]`). The element type is
    /// interned by [`SqlType::array_of`] so `SqlType` stays `Copy`.
    Array(&'static SqlType),
}

/// The element types without modifiers (those of the array types a client can
/// name by OID, and unknown).
static ARRAY_ELEMENTS: [SqlType; 20] = [
    SqlType::Bool,
    SqlType::Bytes,
    SqlType::Int2,
    SqlType::Int4,
    SqlType::Int8,
    SqlType::Float4,
    SqlType::Float8,
    SqlType::Decimal(None),
    SqlType::Text,
    SqlType::Varchar(None),
    SqlType::Date,
    SqlType::Time,
    SqlType::Timestamp,
    SqlType::TimestampTz,
    SqlType::Interval,
    SqlType::Uuid,
    SqlType::Jsonb,
    SqlType::Oid,
    SqlType::Inet,
    SqlType::Unknown,
];

impl SqlType {
    /// The PostgreSQL type OID, as sent in RowDescription and ParameterDescription.
    pub fn oid(self) -> u32 {
        match self {
            SqlType::Unknown => 705,
            SqlType::Bool => 16,
            SqlType::Int2 => 21,
            SqlType::Int4 => 23,
            SqlType::Int8 => 20,
            SqlType::Float4 => 700,
            SqlType::Float8 => 701,
            SqlType::Decimal(_) => 1700,
            SqlType::Text => 25,
            SqlType::Varchar(_) => 1043,
            SqlType::Char(_) => 1042,
            SqlType::Bytes => 17,
            SqlType::Date => 1082,
            SqlType::Time => 1083,
            SqlType::Timestamp => 1114,
            SqlType::TimestampTz => 1184,
            SqlType::Interval => 1186,
            SqlType::Uuid => 2950,
            SqlType::Jsonb => 3802,
            SqlType::Oid => 26,
            SqlType::RegClass => 2205,
            SqlType::RegType => 2206,
            SqlType::Int2Vector => 22,
            SqlType::Inet => 869,
            SqlType::Array(e) => e.array_oid(),
        }
    }

    /// The array type with elements of type `elem` (`elem` itself when it is an array).
    pub fn array_of(elem: SqlType) -> SqlType {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        if let SqlType::Array(_) = elem {
            return elem;
        }
        // Element types without modifiers are in a static table: no lock on the
        // common path.
        if let Some(e) = ARRAY_ELEMENTS.iter().find(|e| **e == elem) {
            return SqlType::Array(e);
        }
        // Each distinct modified element type is leaked once; there are few of them
        // (one per length/precision modifier in use).
        static INTERNED: OnceLock<Mutex<HashMap<SqlType, &'static SqlType>>> = OnceLock::new();
        let map = INTERNED.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        SqlType::Array(map.entry(elem).or_insert_with(|| Box::leak(Box::new(elem))))
    }

    /// The element type of an array type (`None` for other types).
    pub fn element(self) -> Option<SqlType> {
        match self {
            SqlType::Array(e) => Some(*e),
            SqlType::Int2Vector => Some(SqlType::Int2),
            _ => None,
        }
    }

    /// The OID of the array type whose elements are of this type (PostgreSQL's
    /// `typarray`).
    fn array_oid(self) -> u32 {
        match self {
            SqlType::Bool => 1000,
            SqlType::Bytes => 1001,
            SqlType::Int2 => 1005,
            SqlType::Int4 => 1007,
            SqlType::Int8 => 1016,
            SqlType::Float4 => 1021,
            SqlType::Float8 => 1022,
            SqlType::Decimal(_) => 1231,
            SqlType::Char(_) => 1014,
            SqlType::Varchar(_) => 1015,
            SqlType::Date => 1182,
            SqlType::Time => 1183,
            SqlType::Timestamp => 1115,
            SqlType::TimestampTz => 1185,
            SqlType::Interval => 1187,
            SqlType::Uuid => 2951,
            SqlType::Jsonb => 3807,
            SqlType::Oid => 1028,
            SqlType::RegClass => 2210,
            SqlType::RegType => 2211,
            SqlType::Int2Vector => 1006,
            SqlType::Inet => 1041,
            SqlType::Text | SqlType::Unknown | SqlType::Array(_) => 1009,
        }
    }

    /// The type for a PostgreSQL OID (parameter types sent by clients); `None` for
    /// OIDs Tardigrade does not support.
    pub fn from_oid(oid: u32) -> Option<SqlType> {
        Some(match oid {
            0 | 705 => SqlType::Unknown,
            16 => SqlType::Bool,
            21 => SqlType::Int2,
            23 => SqlType::Int4,
            20 => SqlType::Int8,
            700 => SqlType::Float4,
            701 => SqlType::Float8,
            1700 => SqlType::Decimal(None),
            25 => SqlType::Text,
            1043 => SqlType::Varchar(None),
            // an unsized bpchar parameter accepts any length: read it as text
            1042 => SqlType::Text,
            17 => SqlType::Bytes,
            1082 => SqlType::Date,
            1083 => SqlType::Time,
            1114 => SqlType::Timestamp,
            1184 => SqlType::TimestampTz,
            1186 => SqlType::Interval,
            2950 => SqlType::Uuid,
            3802 | 114 => SqlType::Jsonb,
            26 => SqlType::Oid,
            2205 => SqlType::RegClass,
            2206 => SqlType::RegType,
            22 => SqlType::Int2Vector,
            869 => SqlType::Inet,
            // a bpchar[] or json[] parameter is read as text[] / jsonb[], as their
            // elements are
            1014 => SqlType::array_of(SqlType::Text),
            199 => SqlType::array_of(SqlType::Jsonb),
            oid => {
                return ARRAY_ELEMENTS
                    .iter()
                    .find(|e| e.array_oid() == oid)
                    .map(|e| SqlType::array_of(*e));
            }
        })
    }

    /// The integer types, and `oid` (an integer value that casts and compares
    /// like one).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            SqlType::Int2
                | SqlType::Int4
                | SqlType::Int8
                | SqlType::Oid
                | SqlType::RegClass
                | SqlType::RegType
        )
    }

    pub fn is_numeric(self) -> bool {
        self.is_integer()
            || matches!(
                self,
                SqlType::Float4 | SqlType::Float8 | SqlType::Decimal(_)
            )
    }

    pub fn is_string(self) -> bool {
        matches!(self, SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_))
    }

    /// Fixed wire length for RowDescription (-1 when variable).
    pub fn type_len(self) -> i16 {
        match self {
            SqlType::Bool => 1,
            SqlType::Int2 => 2,
            SqlType::Int4
            | SqlType::Float4
            | SqlType::Date
            | SqlType::Oid
            | SqlType::RegClass
            | SqlType::RegType => 4,
            SqlType::Int8
            | SqlType::Float8
            | SqlType::Time
            | SqlType::Timestamp
            | SqlType::TimestampTz => 8,
            SqlType::Interval | SqlType::Uuid => 16,
            _ => -1,
        }
    }
}

impl fmt::Display for SqlType {
    /// PostgreSQL's name for the type, as `format_type` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Unknown => f.write_str("unknown"),
            SqlType::Bool => f.write_str("boolean"),
            SqlType::Int2 => f.write_str("smallint"),
            SqlType::Int4 => f.write_str("integer"),
            SqlType::Int8 => f.write_str("bigint"),
            SqlType::Float4 => f.write_str("real"),
            SqlType::Float8 => f.write_str("double precision"),
            SqlType::Decimal(None) => f.write_str("numeric"),
            SqlType::Decimal(Some((p, s))) => write!(f, "numeric({p},{s})"),
            SqlType::Text => f.write_str("text"),
            SqlType::Varchar(None) => f.write_str("character varying"),
            SqlType::Varchar(Some(n)) => write!(f, "character varying({n})"),
            SqlType::Char(n) => write!(f, "character({n})"),
            SqlType::Bytes => f.write_str("bytea"),
            SqlType::Date => f.write_str("date"),
            SqlType::Time => f.write_str("time without time zone"),
            SqlType::Timestamp => f.write_str("timestamp without time zone"),
            SqlType::TimestampTz => f.write_str("timestamp with time zone"),
            SqlType::Interval => f.write_str("interval"),
            SqlType::Uuid => f.write_str("uuid"),
            SqlType::Jsonb => f.write_str("jsonb"),
            SqlType::Oid => f.write_str("oid"),
            SqlType::RegClass => f.write_str("regclass"),
            SqlType::RegType => f.write_str("regtype"),
            SqlType::Int2Vector => f.write_str("int2vector"),
            SqlType::Inet => f.write_str("inet"),
            SqlType::Array(e) => write!(f, "{e}[]"),
        }
    }
}
