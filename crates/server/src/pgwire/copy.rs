//! `COPY table [(columns)] FROM STDIN`: recognising the statement and parsing the
//! rows a client streams in CopyData messages (PostgreSQL's text, CSV and
//! binary formats).
//! The statement's other direction, `COPY … TO STDOUT`, is parsed here too and
//! runs in [`super::copy_out`].
//!
//! The wire front end ([`super`]) turns parsed rows into batched multi-row INSERTs
//! executed through the session, so COPY needs nothing from the SQL engine beyond
//! prepared INSERT statements. Only the parsing lives here; it never panics on
//! client data (bad bytes are SQL errors: 22P04 bad copy data, 22021 bad UTF-8).

use sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use tardigrade_sqltypes::{SqlError, SqlResult};

/// SQLSTATE 22P04: malformed COPY data.
const BAD_COPY_FILE_FORMAT: &str = "22P04";

/// The data format of a COPY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    /// PostgreSQL's binary COPY format: a signature and header, then per
    /// row a 16-bit field count and per field a 32-bit length (-1 for NULL)
    /// and the type's binary send format; a field count of -1 ends the data.
    Binary,
}

/// The 11-byte signature that opens binary COPY data.
pub const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// What a `COPY … FROM STDIN` or `COPY … TO STDOUT` statement asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopySpec {
    /// `TO STDOUT` (an export) rather than `FROM STDIN`.
    pub to: bool,
    /// `COPY (query) TO STDOUT`: the query's SQL text (`table` is empty).
    pub query: Option<String>,
    /// The table name as written (SQL text, quoting preserved).
    pub table: String,
    /// The columns as written (SQL identifiers); empty means all visible columns.
    pub columns: Vec<String>,
    pub format: CopyFormat,
    pub delimiter: char,
    pub null: String,
    pub header: bool,
    pub quote: char,
    pub escape: char,
}

/// Whether `sql` is (starts as) a COPY statement; cheap, no parsing.
pub fn looks_like_copy(sql: &str) -> bool {
    let s = sql.trim_start();
    s.len() >= 4 && s.as_bytes()[..4].eq_ignore_ascii_case(b"copy")
}

/// Parses a COPY statement. `COPY table [(cols)] FROM STDIN [options]`,
/// `COPY table [(cols)] TO STDOUT [options]` and `COPY (query) TO STDOUT
/// [options]` are supported, in text, CSV or binary format; other forms
/// (files, programs) are 0A000 errors, unparsable text 42601.
pub fn parse_copy(sql: &str) -> SqlResult<CopySpec> {
    let sql = &boolean_words(sql);
    let dialect = PostgreSqlDialect {};
    let mut statements = Parser::new(&dialect)
        .with_recursion_limit(50)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| SqlError::syntax(format!("syntax error: {e}")))?;
    if statements.len() != 1 {
        return Err(SqlError::unsupported(
            "COPY must be the only statement in its query string",
        ));
    }
    let Some(Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    }) = statements.pop()
    else {
        return Err(SqlError::syntax("expected a COPY statement"));
    };
    let (table, columns, query) = match source {
        CopySource::Table {
            table_name,
            columns,
        } => (
            table_name.to_string(),
            columns.iter().map(|c| c.to_string()).collect(),
            None,
        ),
        CopySource::Query(q) if to => (String::new(), Vec::new(), Some(q.to_string())),
        CopySource::Query(_) => {
            return Err(SqlError::syntax(
                "COPY (query) FROM is not valid; use COPY table FROM",
            ));
        }
    };
    let expected = if to {
        CopyTarget::Stdout
    } else {
        CopyTarget::Stdin
    };
    if target != expected {
        return Err(SqlError::unsupported(
            "only COPY … FROM STDIN and COPY … TO STDOUT are supported (no server-side files or programs)",
        ));
    }
    let mut spec = CopySpec {
        to,
        query,
        table,
        columns,
        format: CopyFormat::Text,
        delimiter: '\t',
        null: "\\N".to_string(),
        header: false,
        quote: '"',
        escape: '"',
    };
    let mut delimiter = None;
    let mut null = None;
    let mut escape = None;
    for option in options {
        match option {
            CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                "text" => spec.format = CopyFormat::Text,
                "csv" => spec.format = CopyFormat::Csv,
                "binary" => spec.format = CopyFormat::Binary,
                other => {
                    return Err(SqlError::unsupported(format!(
                        "COPY format \"{other}\" is not supported"
                    )));
                }
            },
            CopyOption::Freeze(_) | CopyOption::ForceNotNull(_) | CopyOption::ForceNull(_) => {}
            CopyOption::Delimiter(c) => delimiter = Some(c),
            CopyOption::Null(s) => null = Some(s),
            CopyOption::Header(h) => spec.header = h,
            CopyOption::Quote(c) => spec.quote = c,
            CopyOption::Escape(c) => escape = Some(c),
            CopyOption::Encoding(e) => {
                if !e.eq_ignore_ascii_case("utf8") && !e.eq_ignore_ascii_case("utf-8") {
                    return Err(SqlError::unsupported("COPY supports only UTF8 encoding"));
                }
            }
            CopyOption::ForceQuote(_) => {}
        }
    }
    for option in legacy_options {
        match option {
            CopyLegacyOption::Delimiter(c) => delimiter = Some(c),
            CopyLegacyOption::Null(s) => null = Some(s),
            CopyLegacyOption::Header => spec.header = true,
            CopyLegacyOption::Csv(csv) => {
                spec.format = CopyFormat::Csv;
                for o in csv {
                    match o {
                        CopyLegacyCsvOption::Header => spec.header = true,
                        CopyLegacyCsvOption::Quote(c) => spec.quote = c,
                        CopyLegacyCsvOption::Escape(c) => escape = Some(c),
                        CopyLegacyCsvOption::ForceQuote(_)
                        | CopyLegacyCsvOption::ForceNotNull(_) => {}
                    }
                }
            }
            CopyLegacyOption::Binary => spec.format = CopyFormat::Binary,
            other => {
                return Err(SqlError::unsupported(format!(
                    "COPY option {other} is not supported"
                )));
            }
        }
    }
    if spec.format == CopyFormat::Binary {
        for (given, name) in [
            (delimiter.is_some(), "DELIMITER"),
            (null.is_some(), "NULL"),
            (spec.header, "HEADER"),
        ] {
            if given {
                return Err(SqlError::syntax(format!(
                    "cannot specify {name} in BINARY mode"
                )));
            }
        }
    }
    if spec.format == CopyFormat::Csv {
        spec.delimiter = ',';
        spec.null = String::new();
    }
    if let Some(d) = delimiter {
        spec.delimiter = d;
    }
    if let Some(n) = null {
        spec.null = n;
    }
    spec.escape = escape.unwrap_or(spec.quote);
    if spec.delimiter == '\n' || spec.delimiter == '\r' {
        return Err(SqlError::new(
            "22023",
            "COPY delimiter cannot be newline or carriage return",
        ));
    }
    Ok(spec)
}

/// PostgreSQL accepts `on`/`off` for boolean COPY options (`FREEZE on`, as
/// pgbench sends it); sqlparser wants `true`/`false`.
fn boolean_words(sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let bytes = lower.as_bytes();
    while i < sql.len() {
        let rest = &lower[i..];
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if boundary && (rest.starts_with("freeze") || rest.starts_with("header")) {
            let word = &sql[i..i + 6];
            let after = &rest[6..];
            let ws = after.len() - after.trim_start().len();
            let value = after.trim_start();
            let end_of = |n: usize| {
                value
                    .as_bytes()
                    .get(n)
                    .is_none_or(|b| !b.is_ascii_alphanumeric())
            };
            if ws > 0 && value.starts_with("on") && end_of(2) {
                out.push_str(word);
                out.push_str(" true");
                i += 6 + ws + 2;
                continue;
            }
            if ws > 0 && value.starts_with("off") && end_of(3) {
                out.push_str(word);
                out.push_str(" false");
                i += 6 + ws + 3;
                continue;
            }
        }
        let c = sql[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// One field of COPY data, as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyField {
    /// The text of a text or CSV field (unescaped).
    Text(String),
    /// A binary-format field: the type's binary send format.
    Binary(Vec<u8>),
}

/// One row of COPY data: each field, `None` for NULL.
pub type CopyRow = Vec<Option<CopyField>>;

/// Where a binary COPY stream is: before its header, or reading tuples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinaryState {
    Header,
    Tuples,
}

fn bad_format(message: impl Into<String>) -> SqlError {
    SqlError::new(BAD_COPY_FILE_FORMAT, message)
}

/// Splits a stream of CopyData chunks into rows.
pub struct RowParser {
    spec: CopySpec,
    pending: Vec<u8>,
    /// How far `pending` has been scanned for a record end (CSV quote tracking).
    scanned: usize,
    in_quotes: bool,
    header_pending: bool,
    /// The end-of-data marker `\.` was seen: later data is ignored.
    ended: bool,
    /// Binary format: whether the header has been read.
    binary: BinaryState,
}

impl RowParser {
    pub fn new(spec: CopySpec) -> RowParser {
        RowParser {
            header_pending: spec.header,
            spec,
            pending: Vec::new(),
            scanned: 0,
            in_quotes: false,
            ended: false,
            binary: BinaryState::Header,
        }
    }

    /// Whether the data is in the binary format.
    pub fn is_binary(&self) -> bool {
        self.spec.format == CopyFormat::Binary
    }

    /// Feeds one chunk; appends the rows it completes to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<CopyRow>) -> SqlResult<()> {
        if self.is_binary() {
            return self.feed_binary(data, out);
        }
        if self.ended {
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        let quote = self.spec.quote as u32;
        let csv = self.spec.format == CopyFormat::Csv && quote < 128;
        let mut start = 0;
        let mut i = self.scanned;
        while i < self.pending.len() {
            let b = self.pending[i];
            if csv && u32::from(b) == quote {
                self.in_quotes = !self.in_quotes;
            } else if b == b'\n' && !self.in_quotes {
                let line_end = if i > start && self.pending[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                let line = self.pending[start..line_end].to_vec();
                start = i + 1;
                if self.line(&line, out)? {
                    self.pending.clear();
                    self.scanned = 0;
                    return Ok(());
                }
            }
            i += 1;
        }
        self.pending.drain(..start);
        self.scanned = self.pending.len();
        Ok(())
    }

    /// The data ended (CopyDone): a last line without a newline is a row too.
    pub fn finish(&mut self, out: &mut Vec<CopyRow>) -> SqlResult<()> {
        if self.is_binary() {
            // As in PostgreSQL, the data may end at a tuple boundary
            // without the trailer; a header is required.
            if self.binary == BinaryState::Header {
                return Err(bad_format("COPY file signature not recognized"));
            }
            if !self.ended && !self.pending.is_empty() {
                return Err(bad_format("unexpected EOF in COPY data"));
            }
            return Ok(());
        }
        if self.ended || self.pending.is_empty() {
            return Ok(());
        }
        if self.in_quotes {
            return Err(SqlError::new(
                BAD_COPY_FILE_FORMAT,
                "unterminated CSV quoted field",
            ));
        }
        let line = std::mem::take(&mut self.pending);
        self.line(&line, out)?;
        Ok(())
    }

    /// Handles one complete line; true when it was the end marker.
    fn line(&mut self, line: &[u8], out: &mut Vec<CopyRow>) -> SqlResult<bool> {
        if line == b"\\." {
            self.ended = true;
            return Ok(true);
        }
        if self.header_pending {
            self.header_pending = false;
            return Ok(false);
        }
        let text = super::frontend::check_text(line)?;
        let row = match self.spec.format {
            CopyFormat::Csv => parse_csv_line(text, &self.spec)?,
            CopyFormat::Text | CopyFormat::Binary => parse_text_line(text, &self.spec)?,
        };
        out.push(row.into_iter().map(|f| f.map(CopyField::Text)).collect());
        Ok(false)
    }

    /// Binary format: appends `data` and takes every complete tuple off the
    /// front of what is pending (a tuple may span CopyData messages).
    fn feed_binary(&mut self, data: &[u8], out: &mut Vec<CopyRow>) -> SqlResult<()> {
        if self.ended {
            if data.is_empty() {
                return Ok(());
            }
            return Err(bad_format("received copy data after EOF marker"));
        }
        self.pending.extend_from_slice(data);
        let mut at = 0;
        if self.binary == BinaryState::Header {
            match binary_header(&self.pending)? {
                Some(len) => {
                    at = len;
                    self.binary = BinaryState::Tuples;
                }
                None => return Ok(()),
            }
        }
        loop {
            match binary_tuple(&self.pending[at..])? {
                BinaryTuple::Incomplete => break,
                BinaryTuple::Trailer => {
                    if self.pending.len() > at + 2 {
                        return Err(bad_format("received copy data after EOF marker"));
                    }
                    self.ended = true;
                    self.pending.clear();
                    return Ok(());
                }
                BinaryTuple::Row(row, len) => {
                    out.push(row);
                    at += len;
                }
            }
        }
        self.pending.drain(..at);
        Ok(())
    }
}

/// The big-endian 16-bit integer at `at` in `b`, if `b` is long enough.
fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(i16::from_be_bytes([bytes[0], bytes[1]]))
}

/// The big-endian 32-bit integer at `at` in `b`, if `b` is long enough.
fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// The length of the binary COPY header at the start of `b` (signature,
/// flags, header extension), or `None` while it is incomplete.
fn binary_header(b: &[u8]) -> SqlResult<Option<usize>> {
    let sig = BINARY_SIGNATURE.len();
    if b.len() < sig {
        // a prefix that already differs fails now, not at the end
        return if BINARY_SIGNATURE.starts_with(b) {
            Ok(None)
        } else {
            Err(bad_format("COPY file signature not recognized"))
        };
    }
    if &b[..sig] != BINARY_SIGNATURE {
        return Err(bad_format("COPY file signature not recognized"));
    }
    let (Some(flags), Some(extension)) = (be_i32(b, sig), be_i32(b, sig + 4)) else {
        return Ok(None);
    };
    if flags & (1 << 16) != 0 {
        return Err(bad_format("invalid COPY file header (WITH OIDS)"));
    }
    if flags & !0xffff & !(1 << 16) != 0 {
        return Err(bad_format(
            "unrecognized critical flags in COPY file header",
        ));
    }
    let Ok(extension) = usize::try_from(extension) else {
        return Err(bad_format("invalid COPY file header (missing length)"));
    };
    let len = sig + 8 + extension;
    Ok(if b.len() >= len { Some(len) } else { None })
}

/// What comes next in a binary COPY stream after the header.
enum BinaryTuple {
    /// Not all of the next tuple has arrived.
    Incomplete,
    /// The -1 field count that ends the data.
    Trailer,
    /// A tuple and the bytes it took.
    Row(CopyRow, usize),
}

fn binary_tuple(b: &[u8]) -> SqlResult<BinaryTuple> {
    let Some(count) = be_i16(b, 0) else {
        return Ok(BinaryTuple::Incomplete);
    };
    if count == -1 {
        return Ok(BinaryTuple::Trailer);
    }
    let Ok(count) = usize::try_from(count) else {
        return Err(bad_format(format!(
            "invalid field count {count} in COPY data"
        )));
    };
    let mut at = 2;
    let mut row = Vec::with_capacity(count);
    for _ in 0..count {
        let Some(len) = be_i32(b, at) else {
            return Ok(BinaryTuple::Incomplete);
        };
        at += 4;
        if len == -1 {
            row.push(None);
            continue;
        }
        let Ok(len) = usize::try_from(len) else {
            return Err(bad_format("invalid field size"));
        };
        let Some(bytes) = at.checked_add(len).and_then(|end| b.get(at..end)) else {
            return Ok(BinaryTuple::Incomplete);
        };
        row.push(Some(CopyField::Binary(bytes.to_vec())));
        at += len;
    }
    Ok(BinaryTuple::Row(row, at))
}

/// PostgreSQL's text format: fields split by the delimiter, backslash escapes, the
/// NULL marker compared before unescaping.
fn parse_text_line(line: &str, spec: &CopySpec) -> SqlResult<Vec<Option<String>>> {
    let mut fields = Vec::new();
    let mut raw = String::new();
    let mut value = String::new();
    let mut chars = line.chars().peekable();
    loop {
        match chars.next() {
            None => {
                fields.push(finish_text_field(&raw, value, spec));
                return Ok(fields);
            }
            Some(c) if c == spec.delimiter => {
                fields.push(finish_text_field(&raw, std::mem::take(&mut value), spec));
                raw.clear();
            }
            Some('\\') => {
                raw.push('\\');
                let Some(e) = chars.next() else {
                    return Err(SqlError::new(
                        BAD_COPY_FILE_FORMAT,
                        "end-of-copy marker corrupt or trailing backslash in COPY data",
                    ));
                };
                raw.push(e);
                match e {
                    'b' => value.push('\u{8}'),
                    'f' => value.push('\u{c}'),
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    'v' => value.push('\u{b}'),
                    '0'..='7' => {
                        let mut n = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            match chars.peek().and_then(|c| c.to_digit(8)) {
                                Some(d) => {
                                    n = n * 8 + d;
                                    if let Some(c) = chars.next() {
                                        raw.push(c);
                                    }
                                }
                                None => break,
                            }
                        }
                        if n & 0xff == 0 {
                            return Err(super::frontend::invalid_bytes(&[0]));
                        }
                        value.push(char::from_u32(n & 0xff).unwrap_or('\u{fffd}'));
                    }
                    'x' => {
                        let mut n = 0u32;
                        let mut digits = 0;
                        while digits < 2 {
                            match chars.peek().and_then(|c| c.to_digit(16)) {
                                Some(d) => {
                                    n = n * 16 + d;
                                    digits += 1;
                                    if let Some(c) = chars.next() {
                                        raw.push(c);
                                    }
                                }
                                None => break,
                            }
                        }
                        if digits == 0 {
                            value.push('x');
                        } else if n == 0 {
                            return Err(super::frontend::invalid_bytes(&[0]));
                        } else {
                            value.push(char::from_u32(n).unwrap_or('\u{fffd}'));
                        }
                    }
                    other => value.push(other),
                }
            }
            Some(c) => {
                raw.push(c);
                value.push(c);
            }
        }
    }
}

fn finish_text_field(raw: &str, value: String, spec: &CopySpec) -> Option<String> {
    if raw == spec.null { None } else { Some(value) }
}

/// CSV: quoted fields may hold delimiters, newlines and doubled quotes; an unquoted
/// field equal to the NULL string is NULL.
fn parse_csv_line(line: &str, spec: &CopySpec) -> SqlResult<Vec<Option<String>>> {
    let mut fields = Vec::new();
    let mut value = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    loop {
        let c = chars.next();
        if in_quotes {
            match c {
                None => {
                    return Err(SqlError::new(
                        BAD_COPY_FILE_FORMAT,
                        "unterminated CSV quoted field",
                    ));
                }
                Some(c) if c == spec.escape && chars.peek() == Some(&spec.quote) => {
                    chars.next();
                    value.push(spec.quote);
                }
                Some(c) if c == spec.quote => in_quotes = false,
                Some(c) => value.push(c),
            }
            continue;
        }
        match c {
            None => {
                fields.push(finish_csv_field(value, quoted, spec));
                return Ok(fields);
            }
            Some(c) if c == spec.delimiter => {
                fields.push(finish_csv_field(std::mem::take(&mut value), quoted, spec));
                quoted = false;
            }
            Some(c) if c == spec.quote => {
                in_quotes = true;
                quoted = true;
            }
            Some(c) => value.push(c),
        }
    }
}

fn finish_csv_field(value: String, quoted: bool, spec: &CopySpec) -> Option<String> {
    if !quoted && value == spec.null {
        None
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(spec: &CopySpec, chunks: &[&[u8]]) -> SqlResult<Vec<CopyRow>> {
        let mut p = RowParser::new(spec.clone());
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out)?;
        }
        p.finish(&mut out)?;
        Ok(out)
    }

    fn s(v: &str) -> Option<CopyField> {
        Some(CopyField::Text(v.to_string()))
    }

    #[test]
    fn parses_copy_statements() {
        let spec = parse_copy("COPY t (a, b) FROM STDIN").expect("parse");
        assert_eq!(spec.table, "t");
        assert_eq!(spec.columns, vec!["a", "b"]);
        assert_eq!(spec.format, CopyFormat::Text);
        let csv = parse_copy("copy t from stdin with (format csv, header true)").expect("csv");
        assert_eq!(csv.format, CopyFormat::Csv);
        assert!(csv.header);
        assert_eq!(csv.delimiter, ',');
        let legacy = parse_copy("COPY t FROM STDIN CSV HEADER").expect("legacy");
        assert_eq!(legacy.format, CopyFormat::Csv);
        assert!(legacy.header);
        let freeze = parse_copy("copy pgbench_accounts from stdin with (freeze on)");
        assert!(freeze.is_ok(), "{freeze:?}");
        let out = parse_copy("COPY t TO STDOUT WITH CSV HEADER").expect("to");
        assert!(out.to && out.header && out.query.is_none());
        let query = parse_copy("COPY (SELECT 1) TO STDOUT").expect("query");
        assert_eq!(query.query.as_deref(), Some("SELECT 1"));
        for refused in ["COPY t TO '/tmp/x'", "COPY t FROM '/tmp/x'"] {
            assert_eq!(
                parse_copy(refused).expect_err(refused).code,
                "0A000",
                "{refused}"
            );
        }
        assert_eq!(
            parse_copy("COPY (SELECT 1) FROM STDIN")
                .expect_err("from query")
                .code,
            "42601"
        );
        assert!(looks_like_copy("  copy t from stdin"));
        assert!(!looks_like_copy("select 1"));
    }

    #[test]
    fn text_rows_across_chunks_with_escapes_and_nulls() {
        let spec = parse_copy("COPY t FROM STDIN").expect("parse");
        let out = rows(
            &spec,
            &[b"1\tone\\ttab\n2\t\\", b"N\n3\tx\\\\y", b"\n\\.\nignored\n"],
        )
        .expect("rows");
        assert_eq!(
            out,
            vec![
                vec![s("1"), s("one\ttab")],
                vec![s("2"), None],
                vec![s("3"), s("x\\y")],
            ]
        );
    }

    #[test]
    fn csv_rows_with_quotes_and_newlines() {
        let spec = parse_copy("COPY t FROM STDIN WITH (FORMAT csv)").expect("parse");
        let out = rows(
            &spec,
            &[
                b"1,\"a,b\",\n2,\"line\nbreak\",\"\"\n3,\"say \"\"hi",
                b"\"\"\",x",
            ],
        )
        .expect("rows");
        assert_eq!(
            out,
            vec![
                vec![s("1"), s("a,b"), None],
                vec![s("2"), s("line\nbreak"), s("")],
                vec![s("3"), s("say \"hi\""), s("x")],
            ]
        );
    }

    #[test]
    fn bad_data_is_an_error_not_a_panic() {
        let spec = parse_copy("COPY t FROM STDIN").expect("parse");
        assert_eq!(
            rows(&spec, &[b"\xff\xfe\n"]).expect_err("utf8").code,
            "22021"
        );
        assert_eq!(
            rows(&spec, &[b"abc\\"]).expect_err("backslash").code,
            "22P04"
        );
        // NUL, raw or escaped, is not text either (PostgreSQL: 22021).
        for nul in [&b"a\0b\n"[..], b"a\\0b\n", b"a\\x00\n"] {
            let e = rows(&spec, &[nul]).expect_err("nul");
            assert_eq!(e.code, "22021", "{nul:?}");
            assert_eq!(
                e.message,
                "invalid byte sequence for encoding \"UTF8\": 0x00"
            );
        }
        let csv = parse_copy("COPY t FROM STDIN CSV").expect("parse");
        assert_eq!(rows(&csv, &[b"\"open"]).expect_err("quote").code, "22P04");
    }

    /// Binary COPY data: the header, then tuples of (length, bytes) fields.
    fn binary_stream(tuples: &[&[Option<&[u8]>]], trailer: bool) -> Vec<u8> {
        let mut out = BINARY_SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(b"ext!");
        for t in tuples {
            out.extend_from_slice(&(t.len() as i16).to_be_bytes());
            for f in *t {
                match f {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(b) => {
                        out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                        out.extend_from_slice(b);
                    }
                }
            }
        }
        if trailer {
            out.extend_from_slice(&(-1i16).to_be_bytes());
        }
        out
    }

    fn bin(b: &[u8]) -> Option<CopyField> {
        Some(CopyField::Binary(b.to_vec()))
    }

    #[test]
    fn parses_binary_copy_statements() {
        for sql in [
            "COPY t FROM STDIN (FORMAT BINARY)",
            "COPY t FROM STDIN WITH BINARY",
            "COPY t (a) TO STDOUT (FORMAT binary)",
        ] {
            assert_eq!(
                parse_copy(sql).expect(sql).format,
                CopyFormat::Binary,
                "{sql}"
            );
        }
        let e = parse_copy("COPY t FROM STDIN (FORMAT BINARY, DELIMITER ',')").expect_err("delim");
        assert_eq!(e.code, "42601");
    }

    #[test]
    fn binary_rows_split_anywhere() {
        let spec = parse_copy("COPY t FROM STDIN (FORMAT BINARY)").expect("parse");
        let stream = binary_stream(
            &[
                &[Some(&[0, 0, 0, 1]), None, Some(b"")],
                &[Some(&[0, 0, 0, 2]), Some(b"abc"), None],
            ],
            true,
        );
        let want = vec![
            vec![bin(&[0, 0, 0, 1]), None, bin(b"")],
            vec![bin(&[0, 0, 0, 2]), bin(b"abc"), None],
        ];
        // in one piece, and cut at every position
        assert_eq!(rows(&spec, &[&stream]).expect("whole"), want);
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(rows(&spec, &[a, b]).expect("split"), want, "cut at {cut}");
        }
        // one byte at a time
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(rows(&spec, &bytes).expect("bytes"), want);
        // without the trailer, ending at a tuple boundary
        let open = binary_stream(&[&[Some(b"x")]], false);
        assert_eq!(
            rows(&spec, &[&open]).expect("no trailer"),
            vec![vec![bin(b"x")]]
        );
    }

    #[test]
    fn malformed_binary_data_is_22p04() {
        let spec = parse_copy("COPY t FROM STDIN (FORMAT BINARY)").expect("parse");
        let good = binary_stream(&[&[Some(b"abc")]], true);
        let header_len = BINARY_SIGNATURE.len() + 8 + 4;
        let mut with_oids = good.clone();
        with_oids[BINARY_SIGNATURE.len() + 1] = 1;
        let mut critical = good.clone();
        critical[BINARY_SIGNATURE.len()] = 0x80;
        let mut negative_ext = good.clone();
        negative_ext[BINARY_SIGNATURE.len() + 4] = 0xff;
        let mut bad_size = good[..header_len + 2].to_vec();
        bad_size.extend_from_slice(&(-7i32).to_be_bytes());
        let mut bad_count = good[..header_len].to_vec();
        bad_count.extend_from_slice(&(-2i16).to_be_bytes());
        let mut after_trailer = good.clone();
        after_trailer.push(0);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("text instead", b"1\tone\n".to_vec()),
            ("empty", Vec::new()),
            ("short signature", BINARY_SIGNATURE[..5].to_vec()),
            (
                "wrong signature",
                b"PGCOPY\n\xff\r\n\x01rest of it".to_vec(),
            ),
            (
                "truncated header",
                good[..BINARY_SIGNATURE.len() + 3].to_vec(),
            ),
            ("with oids", with_oids),
            ("critical flag", critical),
            ("negative extension", negative_ext),
            ("truncated tuple", good[..good.len() - 4].to_vec()),
            ("bad field size", bad_size),
            ("bad field count", bad_count),
            ("data after trailer", after_trailer),
        ];
        for (what, data) in cases {
            let e = rows(&spec, &[&data]).expect_err(what);
            assert_eq!(e.code, "22P04", "{what}: {e:?}");
        }
    }
}
