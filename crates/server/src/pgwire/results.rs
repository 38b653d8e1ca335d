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

/// A statement's rows on their way to the client (see the module doc).
pub struct WireSink<'c, C> {
    client: &'c mut C,
    format: Format,
    /// The simple protocol describes the rows (RowDescription) right before
    /// the first one; the extended protocol did it at Describe.
    describe: bool,
    buffered: Vec<DataRow>,
    buffered_bytes: usize,
    flushed: bool,
    scratch: Scratch,
}

impl<'c, C> WireSink<'c, C>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<C::Error>,
{
    pub fn new(client: &'c mut C, format: Format, describe: bool) -> WireSink<'c, C> {
        WireSink {
            client,
            format,
            describe,
            buffered: Vec::new(),
            buffered_bytes: 0,
            flushed: false,
            scratch: Scratch::default(),
        }
    }

    /// Sends the description (if still due) and every buffered row.
    async fn flush(&mut self, columns: &[Column]) -> Result<(), PgWireError> {
        if self.describe {
            self.describe = false;
            self.client
                .feed(PgWireBackendMessage::RowDescription(row_description(
                    columns,
                    &self.format,
                )))
                .await?;
        }
        for row in self.buffered.drain(..) {
            self.client.feed(PgWireBackendMessage::DataRow(row)).await?;
        }
        self.buffered_bytes = 0;
        self.flushed = true;
        Ok(())
    }

    /// What is left to send once the statement has run (the client is the
    /// caller's again).
    pub fn into_pending(self) -> PendingRows {
        PendingRows {
            format: self.format,
            describe: self.describe,
            rows: self.buffered,
        }
    }
}

/// A streamed statement's rows not sent yet: all of them if there were few.
pub struct PendingRows {
    format: Format,
    describe: bool,
    rows: Vec<DataRow>,
}

impl PendingRows {
    /// After the statement succeeded: the description (if no row went out
    /// yet) and the rest of the rows. The caller sends the CommandComplete;
    /// after a failure, the rows are dropped instead.
    pub async fn send<C>(self, client: &mut C, columns: &[Column]) -> Result<(), PgWireError>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<C::Error>,
    {
        if self.describe {
            client
                .feed(PgWireBackendMessage::RowDescription(row_description(
                    columns,
                    &self.format,
                )))
                .await?;
        }
        for row in self.rows {
            client.feed(PgWireBackendMessage::DataRow(row)).await?;
        }
        Ok(())
    }
}

impl<C> RowSink for WireSink<'_, C>
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
                let encoded = encode_row(columns, row, &self.format, &mut self.scratch)?;
                self.buffered_bytes += encoded.data.len() + 8;
                self.buffered.push(encoded);
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
    }
}
