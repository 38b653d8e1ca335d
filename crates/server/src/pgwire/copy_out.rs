//! `COPY table [(columns)] TO STDOUT` and `COPY (query) TO STDOUT`, in
//! PostgreSQL's text and CSV formats: the query's rows stream to the client
//! as CopyData messages (one per row) through a [`RowSink`], so an export of
//! a large table is never held in memory. As for query results
//! ([`super::results`]), the first 16 KiB are held back so that an implicit
//! transaction can still be retried by the server.

use bytes::Bytes;
use futures::{Sink, SinkExt};
use pgwire::error::PgWireError;
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyOutResponse};
use tardigrade_sql::exec::BoxFuture;
use tardigrade_sql::{Batch, Column, RowSink};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, Value};

use super::copy::{CopyFormat, CopySpec};
use super::results::RESULTS_BUFFER_BYTES;

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
            CopyFormat::Text => escape_text(text, spec.delimiter, out),
            CopyFormat::Csv => quote_csv(text, spec, out),
        }
    }
    out.push(b'\n');
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

/// A COPY … TO's rows on their way to the client.
pub struct CopyOutSink<'c, C> {
    client: &'c mut C,
    spec: CopySpec,
    /// CopyOutResponse (and the CSV header) not sent yet.
    started: bool,
    buffered: Vec<Bytes>,
    buffered_bytes: usize,
    flushed: bool,
    text: String,
}

impl<'c, C> CopyOutSink<'c, C>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<C::Error>,
{
    pub fn new(client: &'c mut C, spec: CopySpec) -> CopyOutSink<'c, C> {
        CopyOutSink {
            client,
            spec,
            started: false,
            buffered: Vec::new(),
            buffered_bytes: 0,
            flushed: false,
            text: String::new(),
        }
    }

    async fn flush(&mut self, columns: &[Column]) -> Result<(), PgWireError> {
        if !self.started {
            self.started = true;
            for m in start_messages(&self.spec, columns) {
                self.client.feed(m).await?;
            }
        }
        for row in self.buffered.drain(..) {
            self.client
                .feed(PgWireBackendMessage::CopyData(CopyData::new(row)))
                .await?;
        }
        self.buffered_bytes = 0;
        self.flushed = true;
        Ok(())
    }

    /// What is left to send once the query has run.
    pub fn into_pending(self) -> PendingCopy {
        PendingCopy {
            spec: self.spec,
            started: self.started,
            rows: self.buffered,
        }
    }
}

/// CopyOutResponse (all columns in text), then the CSV header line if asked.
fn start_messages(spec: &CopySpec, columns: &[Column]) -> Vec<PgWireBackendMessage> {
    let n = i16::try_from(columns.len()).unwrap_or(i16::MAX);
    let mut out = vec![PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
        0,
        n,
        vec![0; n.max(0) as usize],
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

/// A COPY … TO's rows not sent yet.
pub struct PendingCopy {
    spec: CopySpec,
    started: bool,
    rows: Vec<Bytes>,
}

impl PendingCopy {
    /// Whether the client was already told the COPY started (an error must
    /// then end it).
    pub fn started(&self) -> bool {
        self.started
    }

    /// After the query succeeded: the start (if not sent yet), the rest of
    /// the rows and CopyDone. The caller sends the CommandComplete.
    pub async fn finish<C>(self, client: &mut C, columns: &[Column]) -> Result<(), PgWireError>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<C::Error>,
    {
        if !self.started {
            for m in start_messages(&self.spec, columns) {
                client.feed(m).await?;
            }
        }
        for row in self.rows {
            client
                .feed(PgWireBackendMessage::CopyData(CopyData::new(row)))
                .await?;
        }
        client
            .feed(PgWireBackendMessage::CopyDone(
                pgwire::messages::copy::CopyDone::new(),
            ))
            .await?;
        Ok(())
    }
}

impl<C> RowSink for CopyOutSink<'_, C>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<C::Error>,
{
    fn send<'s>(
        &'s mut self,
        columns: &'s [Column],
        rows: &'s Batch,
    ) -> BoxFuture<'s, SqlResult<()>> {
        Box::pin(async move {
            for row in rows.rows() {
                let mut line = Vec::new();
                encode_copy_row(&self.spec, columns, row, &mut self.text, &mut line);
                self.buffered_bytes += line.len() + 5;
                self.buffered.push(line.into());
            }
            if self.buffered_bytes >= RESULTS_BUFFER_BYTES {
                self.flush(columns).await.map_err(|e| {
                    SqlError::new(
                        codes::CONNECTION_FAILURE,
                        format!("sending COPY data to the client: {e}"),
                    )
                })?;
            }
            Ok(())
        })
    }

    fn flushed(&self) -> bool {
        self.flushed
    }

    fn discard(&mut self) {
        self.buffered.clear();
        self.buffered_bytes = 0;
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
