//! `COPY table [(columns)] TO STDOUT` and `COPY (query) TO STDOUT`, in
//! PostgreSQL's text, CSV and binary formats: the query's rows stream to the client
//! as CopyData messages (one per row) through a [`HeldBack`] sink, so an export of
//! a large table is never held in memory. As for query results
//! ([`super::results`]), the first 16 KiB are held back so that an implicit
//! transaction can still be retried by the server.

use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
use tardigrade_sql::Column;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use super::copy::{BINARY_SIGNATURE, CopyFormat, CopySpec};
use super::results::{HeldBack, RowEncoding};

/// The query a COPY … TO runs.
pub fn copy_out_query(spec: &CopySpec) -> String {
    match &spec.query {
        Some(q) => q.clone(),
        None if spec.columns.is_empty() => format!("SELECT * FROM {}", spec.table),
        None => format!("SELECT {} FROM {}", spec.columns.join(", "), spec.table),
    }
}

/// Appends one row in the COPY format of `spec`, newline included.
pub fn encode_copy_row(
    spec: &CopySpec,
    columns: &[Column],
    row: &[Value],
    text: &mut String,
    out: &mut Vec<u8>,
) {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            push_char(out, spec.delimiter);
        }
        if value.is_null() {
            out.extend_from_slice(spec.null.as_bytes());
            continue;
        }
        text.clear();
        if let Some(c) = columns.get(i) {
            value.write_text(c.ty, text);
        }
        match spec.format {
            CopyFormat::Csv => quote_csv(text, spec, out),
            CopyFormat::Text | CopyFormat::Binary => escape_text(text, spec.delimiter, out),
        }
    }
    out.push(b'\n');
}

/// The binary format's header: signature, flags (none), an empty header
/// extension.
fn binary_header() -> Vec<u8> {
    let mut out = BINARY_SIGNATURE.to_vec();
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out
}

/// Appends one row in the binary format: the field count, then each field's
/// length (-1 for NULL) and the binary send format of its column's type.
pub fn encode_binary_row(
    columns: &[Column],
    row: &[Value],
    field: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> SqlResult<()> {
    let too_many = || SqlError::new(codes::PROGRAM_LIMIT_EXCEEDED, "too many columns");
    out.extend_from_slice(
        &i16::try_from(row.len())
            .map_err(|_| too_many())?
            .to_be_bytes(),
    );
    for (i, value) in row.iter().enumerate() {
        if value.is_null() {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        let ty = match columns.get(i).map(|c| c.ty) {
            None | Some(SqlType::Unknown) => SqlType::Text,
            Some(ty) => ty,
        };
        field.clear();
        value.write_binary(ty, field)?;
        let len = i32::try_from(field.len())
            .map_err(|_| SqlError::new(codes::PROGRAM_LIMIT_EXCEEDED, "value too large"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field);
    }
    Ok(())
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Text format: backslash, newline, carriage return, tab and the delimiter
/// are escaped with a backslash.
fn escape_text(s: &str, delimiter: char, out: &mut Vec<u8>) {
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if c == delimiter => {
                out.push(b'\\');
                push_char(out, c);
            }
            c => push_char(out, c),
        }
    }
}

/// CSV: a value is quoted when it holds the delimiter, the quote, a line
/// break, equals the NULL string, or is empty; quotes (and escapes) inside
/// are preceded by the escape character.
fn quote_csv(s: &str, spec: &CopySpec, out: &mut Vec<u8>) {
    let needs_quotes = s.is_empty()
        || s == spec.null
        || s.contains([spec.delimiter, spec.quote, '\n', '\r'])
        || (spec.escape != spec.quote && s.contains(spec.escape));
    if !needs_quotes {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    push_char(out, spec.quote);
    for c in s.chars() {
        if c == spec.quote || c == spec.escape {
            push_char(out, spec.escape);
        }
        push_char(out, c);
    }
    push_char(out, spec.quote);
}

/// COPY … TO framing: CopyOutResponse (and the CSV header), a CopyData per
/// row, CopyDone.
pub struct CopyEncoding {
    spec: CopySpec,
    text: String,
    /// A binary field's bytes, reused from one to the next.
    field: Vec<u8>,
    /// Binary format: the header went out with a row (as PostgreSQL does
    /// it, the header shares the first row's CopyData message; psycopg
    /// expects it there).
    header_sent: bool,
}

impl CopyEncoding {
    pub fn new(spec: CopySpec) -> CopyEncoding {
        CopyEncoding {
            spec,
            text: String::new(),
            field: Vec::new(),
            header_sent: false,
        }
    }
}

/// The sink of a COPY … TO's rows.
pub type CopyOutSink<'c, C> = HeldBack<'c, C, CopyEncoding>;

impl RowEncoding for CopyEncoding {
    /// CopyOutResponse (all columns in text, or all in binary), then the
    /// CSV header line if asked.
    fn start(&self, columns: &[Column]) -> Vec<PgWireBackendMessage> {
        let spec = &self.spec;
        let n = i16::try_from(columns.len()).unwrap_or(i16::MAX);
        let format = i8::from(spec.format == CopyFormat::Binary);
        let mut out = vec![PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            format,
            n,
            vec![i16::from(format); n.max(0) as usize],
        ))];
        if spec.header && spec.format == CopyFormat::Csv {
            let mut line = Vec::new();
            for (i, c) in columns.iter().enumerate() {
                if i > 0 {
                    push_char(&mut line, spec.delimiter);
                }
                quote_csv(&c.name, spec, &mut line);
            }
            line.push(b'\n');
            out.push(PgWireBackendMessage::CopyData(CopyData::new(line.into())));
        }
        out
    }

    fn encode(
        &mut self,
        columns: &[Column],
        row: &[Value],
    ) -> SqlResult<(PgWireBackendMessage, usize)> {
        let mut line = Vec::new();
        if self.spec.format == CopyFormat::Binary {
            if !self.header_sent {
                self.header_sent = true;
                line = binary_header();
            }
            encode_binary_row(columns, row, &mut self.field, &mut line)?;
        } else {
            encode_copy_row(&self.spec, columns, row, &mut self.text, &mut line);
        }
        let size = line.len() + 5;
        Ok((
            PgWireBackendMessage::CopyData(CopyData::new(line.into())),
            size,
        ))
    }

    /// The binary format's trailer (a field count of -1, after the header
    /// when there were no rows), then CopyDone.
    fn end(&self) -> Vec<PgWireBackendMessage> {
        let mut out = Vec::new();
        if self.spec.format == CopyFormat::Binary {
            let mut trailer = if self.header_sent {
                Vec::new()
            } else {
                binary_header()
            };
            trailer.extend_from_slice(&(-1i16).to_be_bytes());
            out.push(PgWireBackendMessage::CopyData(CopyData::new(
                trailer.into(),
            )));
        }
        out.push(PgWireBackendMessage::CopyDone(CopyDone::new()));
        out
    }

    fn discarded(&mut self) {
        self.header_sent = false;
    }
}

#[cfg(test)]
mod tests {
    use tardigrade_sqltypes::SqlType;

    use super::*;
    use crate::pgwire::copy::parse_copy;

    fn line(sql: &str, row: &[Value]) -> String {
        let spec = parse_copy(sql).expect("spec");
        let columns: Vec<Column> = row
            .iter()
            .map(|_| Column {
                name: "c".into(),
                ty: SqlType::Text,
            })
            .collect();
        let mut out = Vec::new();
        encode_copy_row(&spec, &columns, row, &mut String::new(), &mut out);
        String::from_utf8(out).expect("utf8")
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn text_format_escapes_and_marks_nulls() {
        assert_eq!(
            line("COPY t TO STDOUT", &[t("a\tb"), Value::Null, t("x\\y\nz")]),
            "a\\tb\t\\N\tx\\\\y\\nz\n"
        );
        assert_eq!(
            line("COPY t TO STDOUT WITH (DELIMITER '|')", &[t("a|b"), t("c")]),
            "a\\|b|c\n"
        );
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(
            line(
                "COPY t TO STDOUT WITH CSV",
                &[t("plain"), t("a,b"), t("say \"hi\""), t(""), Value::Null]
            ),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"\",\n"
        );
    }

    #[test]
    fn the_query_of_each_form() {
        let q = |sql: &str| copy_out_query(&parse_copy(sql).expect("spec"));
        assert_eq!(q("COPY t TO STDOUT"), "SELECT * FROM t");
        assert_eq!(q("COPY t (a, b) TO STDOUT"), "SELECT a, b FROM t");
        assert_eq!(
            q("COPY (SELECT a FROM t WHERE b > 1) TO STDOUT"),
            "SELECT a FROM t WHERE b > 1"
        );
    }
}
