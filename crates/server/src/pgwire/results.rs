//! Sending a query's rows: encoding them as DataRow messages, and
//! [`WireSink`], through which a statement streams its rows to the client
//! while it runs instead of collecting its whole result set first.
//!
//! As in CockroachDB (`sql.defaults.results_buffer.size`), rows are held back
//! until [`RESULTS_BUFFER_BYTES`] of them are encoded: a statement whose rows
//! all fit is still retried by the server on a retryable error (the client
//! has seen nothing); past that, rows go out as they come and a later error
//! reaches the client after them.

use bytes::BytesMut;
use futures::{Sink, SinkExt};
use pgwire::api::portal::Format;
use pgwire::api::results::FieldFormat;
use pgwire::error::PgWireError;
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use tardigrade_sql::exec::BoxFuture;
use tardigrade_sql::{Batch, Column, RowSink};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use super::{format_of, row_description};

/// Encoded rows a statement holds back before they go to the client.
pub const RESULTS_BUFFER_BYTES: usize = 16 << 10;

/// Encodes rows as DataRow messages in the requested formats.
pub fn encode_rows<'r>(
    columns: &[Column],
    rows: impl IntoIterator<Item = &'r [Value]>,
    format: &Format,
) -> SqlResult<Vec<DataRow>> {
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    for row in rows {
        out.push(encode_row(columns, row, format, &mut scratch)?);
    }
    Ok(out)
}

/// Buffers reused from one value to the next.
#[derive(Default)]
struct Scratch {
    text: String,
    binary: Vec<u8>,
}

fn encode_row(
    columns: &[Column],
    row: &[Value],
    format: &Format,
    scratch: &mut Scratch,
) -> SqlResult<DataRow> {
    let mut buf = BytesMut::with_capacity(16 * row.len());
    for (i, value) in row.iter().enumerate() {
        if value.is_null() {
            buf.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        let ty = columns.get(i).map(|c| c.ty).unwrap_or(SqlType::Text);
        let bytes: &[u8] = match format_of(format, i) {
            FieldFormat::Text => {
                scratch.text.clear();
                value.write_text(ty, &mut scratch.text);
                scratch.text.as_bytes()
            }
            FieldFormat::Binary => {
                scratch.binary.clear();
                value.write_binary(ty, &mut scratch.binary)?;
                &scratch.binary
            }
        };
        let len = i32::try_from(bytes.len())
            .map_err(|_| SqlError::new(codes::PROGRAM_LIMIT_EXCEEDED, "value too large"))?;
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(bytes);
    }
    let fields = i16::try_from(row.len())
        .map_err(|_| SqlError::new(codes::PROGRAM_LIMIT_EXCEEDED, "too many columns"))?;
    Ok(DataRow::new(buf, fields))
}

/// How a [`HeldBack`] sink frames rows: what goes before the first row,
/// each row's message, what goes after the last one.
pub trait RowEncoding: Send {
    fn start(&self, columns: &[Column]) -> Vec<PgWireBackendMessage>;
    /// One row's message and its size in bytes.
    fn encode(
        &mut self,
        columns: &[Column],
        row: &[Value],
    ) -> SqlResult<(PgWireBackendMessage, usize)>;
    fn end(&self) -> Vec<PgWireBackendMessage>;
    /// The rows encoded so far were dropped unsent (the statement is
    /// retried): an encoding that framed the first row differently starts
    /// over.
    fn discarded(&mut self) {}
}

/// Query results as DataRows in the portal's formats; the simple protocol
/// describes them (RowDescription) right before the first one, the extended
/// protocol did it at Describe.
pub struct DataRows {
    format: Format,
    describe: bool,
    scratch: Scratch,
}

impl DataRows {
    pub fn new(format: Format, describe: bool) -> DataRows {
        DataRows {
            format,
            describe,
            scratch: Scratch::default(),
        }
    }
}

impl RowEncoding for DataRows {
    fn start(&self, columns: &[Column]) -> Vec<PgWireBackendMessage> {
        if self.describe {
            vec![PgWireBackendMessage::RowDescription(row_description(
                columns,
                &self.format,
            ))]
        } else {
            Vec::new()
        }
    }

    fn encode(
        &mut self,
        columns: &[Column],
        row: &[Value],
    ) -> SqlResult<(PgWireBackendMessage, usize)> {
        let encoded = encode_row(columns, row, &self.format, &mut self.scratch)?;
        let size = encoded.data.len() + 8;
        Ok((PgWireBackendMessage::DataRow(encoded), size))
    }

    fn end(&self) -> Vec<PgWireBackendMessage> {
        Vec::new()
    }
}

/// A statement's rows on their way to the client (see the module doc).
pub struct HeldBack<'c, C, E> {
    client: &'c mut C,
    encoding: E,
    /// The messages before the first row went out.
    started: bool,
    buffered: Vec<PgWireBackendMessage>,
    buffered_bytes: usize,
    flushed: bool,
}

/// The sink of a query's DataRows.
pub type WireSink<'c, C> = HeldBack<'c, C, DataRows>;

impl<'c, C, E> HeldBack<'c, C, E>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<C::Error>,
    E: RowEncoding,
{
    pub fn new(client: &'c mut C, encoding: E) -> HeldBack<'c, C, E> {
        HeldBack {
            client,
            encoding,
            started: false,
            buffered: Vec::new(),
            buffered_bytes: 0,
            flushed: false,
        }
    }

    /// Sends the start (if still due) and every buffered row.
    async fn flush(&mut self, columns: &[Column]) -> Result<(), PgWireError> {
        if !self.started {
            self.started = true;
            for m in self.encoding.start(columns) {
                self.client.feed(m).await?;
            }
        }
        for m in self.buffered.drain(..) {
            self.client.feed(m).await?;
        }
        self.buffered_bytes = 0;
        self.flushed = true;
        Ok(())
    }

    /// What is left to send once the statement has run (the client is the
    /// caller's again).
    pub fn into_pending(self) -> Pending<E> {
        Pending {
            encoding: self.encoding,
            started: self.started,
            rows: self.buffered,
        }
    }
}

/// A streamed statement's output not sent yet: all of it if it was small.
pub struct Pending<E> {
    encoding: E,
    started: bool,
    rows: Vec<PgWireBackendMessage>,
}

impl<E: RowEncoding> Pending<E> {
    /// After the statement succeeded: the start (if nothing went out yet),
    /// the rest of the rows and the end. The caller sends the
    /// CommandComplete; after a failure, the rows are dropped instead.
    pub async fn finish<C>(self, client: &mut C, columns: &[Column]) -> Result<(), PgWireError>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<C::Error>,
    {
        if !self.started {
            for m in self.encoding.start(columns) {
                client.feed(m).await?;
            }
        }
        for m in self.rows {
            client.feed(m).await?;
        }
        for m in self.encoding.end() {
            client.feed(m).await?;
        }
        Ok(())
    }
}

impl<C, E> RowSink for HeldBack<'_, C, E>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<C::Error>,
    E: RowEncoding,
{
    fn send<'s>(
        &'s mut self,
        columns: &'s [Column],
        rows: &'s Batch,
    ) -> BoxFuture<'s, SqlResult<()>> {
        Box::pin(async move {
            for row in rows.rows() {
                let (message, size) = self.encoding.encode(columns, row)?;
                self.buffered_bytes += size;
                self.buffered.push(message);
            }
            if self.buffered_bytes >= RESULTS_BUFFER_BYTES {
                self.flush(columns).await.map_err(|e| {
                    // The client is gone or stuck: the statement stops.
                    SqlError::new(
                        codes::CONNECTION_FAILURE,
                        format!("sending rows to the client: {e}"),
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
        self.encoding.discarded();
    }
}
