//! Checks on the bytes a client sends that the `pgwire` crate does not make:
//!
//! - [`open`] reads the untyped packets that open a connection itself
//!   (answering SSLRequest and GSSENCRequest with `N`: no TLS yet) and refuses,
//!   as PostgreSQL does, a startup packet with an impossible length (under 8 or
//!   over 10,000 bytes), a protocol version other than 3, or parameters
//!   without their terminators; only a well-formed packet reaches `pgwire`.
//! - [`CheckedStream`] sits under the message decoder and follows the framing
//!   of the typed messages after startup: the text of each Query and Parse must
//!   be valid UTF-8 without NUL bytes (`pgwire` would replace bad bytes with
//!   U+FFFD and stop at a NUL). Its verdict on each such message waits in a
//!   queue; the connection loop takes it when the message is decoded
//!   ([`CheckedStream::take_verdict`]) and answers 22021 instead of running it.
//!
//! [`check_text`] is the same UTF-8 / NUL rule for parameter and COPY data.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use pgwire::api::{ClientInfo, DefaultClient, PgWireConnectionState};
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;
use pgwire::tokio::server::PgWireMessageServerCodec;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// PostgreSQL's bound on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP_PACKET: usize = 10_000;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// Why a connection is refused during startup: the SQLSTATE and message of the
/// FATAL error sent before closing.
#[derive(Debug, PartialEq, Eq)]
pub struct StartupError {
    pub code: &'static str,
    pub message: String,
}

fn protocol_violation(message: impl Into<String>) -> StartupError {
    StartupError {
        code: codes::PROTOCOL_VIOLATION,
        message: message.into(),
    }
}

/// A socket past the opening packets, with the StartupMessage or
/// CancelRequest in its read buffer for `pgwire` to decode.
pub type Socket<S> = Framed<CheckedStream, PgWireMessageServerCodec<S>>;

/// Reads the opening packets of a connection; `None` when the client went
/// away or was refused (with a FATAL error, as PostgreSQL does).
pub async fn open<S>(mut stream: TcpStream) -> Option<Socket<S>> {
    let addr = stream.peer_addr().ok()?;
    let _ = stream.set_nodelay(true);
    match opening(&mut stream).await {
        Ok(packet) => {
            let codec = PgWireMessageServerCodec::new(DefaultClient::new(addr, false));
            let mut parts = FramedParts::new(CheckedStream::new(stream), codec);
            parts.read_buf = BytesMut::from(&packet[..]);
            let mut socket = Framed::from_parts(parts);
            socket.set_state(PgWireConnectionState::AwaitingStartup);
            Some(socket)
        }
        Err(Some(e)) => {
            tracing::debug!("SQL connection refused at startup: {}", e.message);
            let info = ErrorInfo::new("FATAL".to_string(), e.code.to_string(), e.message);
            let mut out = BytesMut::new();
            if PgWireBackendMessage::ErrorResponse(info.into())
                .encode(&mut out)
                .is_ok()
            {
                let _ = stream.write_all(&out).await;
            }
            let _ = stream.shutdown().await;
            None
        }
        Err(None) => None,
    }
}

/// The StartupMessage or CancelRequest, after answering encryption requests
/// (each may come once). `Err(None)`: the client went away.
async fn opening(stream: &mut TcpStream) -> Result<Vec<u8>, Option<StartupError>> {
    for _ in 0..3 {
        let packet = read_packet(stream).await?;
        match classify(&packet)? {
            Opening::Negotiate => stream.write_all(b"N").await.map_err(|_| None)?,
            Opening::Start => return Ok(packet),
        }
    }
    Err(Some(protocol_violation("too many encryption requests")))
}

/// One length-prefixed packet, the length included.
async fn read_packet(stream: &mut TcpStream) -> Result<Vec<u8>, Option<StartupError>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.map_err(|_| None)?;
    let n = u32::from_be_bytes(len) as usize;
    if !(8..=MAX_STARTUP_PACKET).contains(&n) {
        return Err(Some(protocol_violation("invalid length of startup packet")));
    }
    let mut packet = vec![0u8; n];
    packet[..4].copy_from_slice(&len);
    stream
        .read_exact(&mut packet[4..])
        .await
        .map_err(|_| None)?;
    Ok(packet)
}

enum Opening {
    /// An encryption request (answered `N`); the real startup follows.
    Negotiate,
    /// A StartupMessage or CancelRequest.
    Start,
}

/// What an opening packet (length included, 8 to 10,000 bytes) is, or why it
/// is refused.
fn classify(packet: &[u8]) -> Result<Opening, StartupError> {
    let code = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    match code {
        SSL_REQUEST | GSSENC_REQUEST if packet.len() == 8 => Ok(Opening::Negotiate),
        CANCEL_REQUEST if packet.len() == 16 => Ok(Opening::Start),
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => {
            Err(protocol_violation("invalid length of startup packet"))
        }
        _ => {
            let (major, minor) = (code >> 16, code & 0xffff);
            if major != 3 {
                return Err(StartupError {
                    code: codes::FEATURE_NOT_SUPPORTED,
                    message: format!(
                        "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"
                    ),
                });
            }
            check_parameters(&packet[8..])?;
            Ok(Opening::Start)
        }
    }
}

/// The parameters of a StartupMessage: name/value pairs of NUL-terminated
/// strings, then an empty name (PostgreSQL's layout check).
fn check_parameters(body: &[u8]) -> Result<(), StartupError> {
    let layout =
        || protocol_violation("invalid startup packet layout: expected terminator as last byte");
    let mut rest = body;
    loop {
        let name_end = rest.iter().position(|b| *b == 0).ok_or_else(layout)?;
        if name_end == 0 {
            // The terminator: it must be the last byte.
            return if rest.len() == 1 {
                Ok(())
            } else {
                Err(layout())
            };
        }
        rest = &rest[name_end + 1..];
        let value_end = rest.iter().position(|b| *b == 0).ok_or_else(layout)?;
        rest = &rest[value_end + 1..];
    }
}

/// `bytes` as text, when they are valid UTF-8 without NUL bytes (22021
/// otherwise, with PostgreSQL's message).
pub fn check_text(bytes: &[u8]) -> SqlResult<&str> {
    let nul = bytes.iter().position(|b| *b == 0);
    // The first offence is reported: a bad sequence before the NUL, or the NUL.
    let text = std::str::from_utf8(&bytes[..nul.unwrap_or(bytes.len())]).map_err(|e| {
        let at = e.valid_up_to();
        let len = e.error_len().unwrap_or(bytes.len() - at);
        invalid_bytes(&bytes[at..at + len])
    })?;
    match nul {
        Some(_) => Err(invalid_bytes(&[0])),
        None => Ok(text),
    }
}

/// PostgreSQL's error for bytes that are not text in the database encoding.
pub(crate) fn invalid_bytes(bytes: &[u8]) -> SqlError {
    let shown: Vec<String> = bytes.iter().take(4).map(|b| format!("0x{b:02x}")).collect();
    SqlError::new(
        codes::CHARACTER_NOT_IN_REPERTOIRE,
        format!(
            "invalid byte sequence for encoding \"UTF8\": {}",
            shown.join(" ")
        ),
    )
}

/// Incremental UTF-8 validation over chunks, keeping an unfinished sequence
/// between them.
#[derive(Default)]
struct Utf8Scan {
    pending: Vec<u8>,
}

impl Utf8Scan {
    /// Checks the next chunk; the error for the first invalid sequence.
    fn feed(&mut self, chunk: &[u8]) -> Option<SqlError> {
        let mut joined = std::mem::take(&mut self.pending);
        joined.extend_from_slice(chunk);
        match std::str::from_utf8(&joined) {
            Ok(_) => None,
            Err(e) => match e.error_len() {
                Some(len) => {
                    let at = e.valid_up_to();
                    Some(invalid_bytes(&joined[at..at + len]))
                }
                None => {
                    self.pending = joined[e.valid_up_to()..].to_vec();
                    None
                }
            },
        }
    }

    /// The text ended: an unfinished sequence is invalid.
    fn finish(&mut self) -> Option<SqlError> {
        let pending = std::mem::take(&mut self.pending);
        (!pending.is_empty()).then(|| invalid_bytes(&pending))
    }
}

/// Where the scanner is in the stream of typed messages.
enum Framing {
    /// Reading the type byte and length of the next message.
    Header { bytes: [u8; 5], have: usize },
    /// Inside a message body.
    Body {
        remaining: usize,
        text: Option<TextCheck>,
        /// A Parse's bytes so far, header included, held until it is whole.
        held: Option<Vec<u8>>,
    },
    /// The framing makes no sense (the decoder closes the connection); stop
    /// following it.
    Lost,
}

/// The check of the text strings at the start of a Query (one) or Parse
/// (statement name and query) body.
struct TextCheck {
    strings_left: usize,
    utf8: Utf8Scan,
    error: Option<SqlError>,
    /// A Query: a NUL before its last byte is a NUL inside the query.
    query: bool,
    /// A Parse's bytes after its two strings (the parameter type count and
    /// the types), and the first two of them (the count).
    tail_len: usize,
    tail_count: [u8; 2],
}

/// The client socket under the message decoder: passes everything through,
/// judging each Query and Parse message on the way.
pub struct CheckedStream {
    inner: TcpStream,
    scanner: Scanner,
    /// Bytes read from the client and scanned, not yet handed to the decoder.
    ready: Vec<u8>,
    /// How much of `ready` was handed out already (a held Parse can be
    /// megabytes: no shifting the rest down after each read).
    ready_pos: usize,
    /// Where the next read from the client goes before it is scanned.
    incoming: Box<[u8]>,
}

impl CheckedStream {
    fn new(inner: TcpStream) -> CheckedStream {
        CheckedStream {
            inner,
            scanner: Scanner::default(),
            ready: Vec::new(),
            ready_pos: 0,
            incoming: vec![0; 16 * 1024].into_boxed_slice(),
        }
    }

    /// The verdict on the Query or Parse message just decoded: the error to
    /// answer instead of running it. (Messages are decoded in order, and only
    /// once all their bytes went through [`Scanner::scan`].)
    pub fn take_verdict(&mut self) -> Option<SqlError> {
        self.scanner.verdicts.pop_front().flatten()
    }
}

/// Follows the framing of typed messages and judges the text of each Query
/// and Parse.
struct Scanner {
    framing: Framing,
    /// One per Query or Parse seen whole, oldest first.
    verdicts: VecDeque<Option<SqlError>>,
}

impl Default for Scanner {
    fn default() -> Scanner {
        Scanner {
            framing: Framing::Header {
                bytes: [0; 5],
                have: 0,
            },
            verdicts: VecDeque::new(),
        }
    }
}

/// A Parse longer than this is passed on as it comes instead of held whole
/// (it is still judged; `pgwire` refuses messages that large anyway).
const MAX_HELD_PARSE: usize = 16 << 20;

/// What a refused Parse is replaced with before `pgwire` decodes it: an
/// unnamed, empty statement without parameter types. The connection loop
/// answers the verdict instead of preparing it.
const HARMLESS_PARSE: [u8; 9] = [b'P', 0, 0, 0, 8, 0, 0, 0, 0];

impl Scanner {
    /// Follows `data`, the next bytes from the client, and appends what the
    /// decoder may see to `out`. A NUL inside a Query's text is replaced by
    /// a space (the message is refused anyway): `pgwire` would end the text
    /// there and read the rest as the next message. A Parse is held until it
    /// is whole: if it is refused it is replaced by [`HARMLESS_PARSE`], since
    /// `pgwire` reads its parameter types from the buffer without checking
    /// the message's length, past the message's end (into the next one, or
    /// beyond the buffer).
    fn scan(&mut self, mut data: &mut [u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            match &mut self.framing {
                Framing::Lost => {
                    out.extend_from_slice(data);
                    return;
                }
                Framing::Header { bytes, have } => {
                    let take = (5 - *have).min(data.len());
                    bytes[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &mut data[take..];
                    if *have == 5 {
                        let header = *bytes;
                        let kind = header[0];
                        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
                        self.framing = match (len as usize).checked_sub(4) {
                            None => {
                                out.extend_from_slice(&header);
                                Framing::Lost
                            }
                            Some(remaining) => {
                                let text = match kind {
                                    b'Q' | b'P' => Some(TextCheck {
                                        strings_left: if kind == b'Q' { 1 } else { 2 },
                                        utf8: Utf8Scan::default(),
                                        error: None,
                                        query: kind == b'Q',
                                        tail_len: 0,
                                        tail_count: [0; 2],
                                    }),
                                    _ => None,
                                };
                                let held = if kind == b'P' && remaining <= MAX_HELD_PARSE {
                                    let mut held = Vec::with_capacity(5 + remaining);
                                    held.extend_from_slice(&header);
                                    Some(held)
                                } else {
                                    out.extend_from_slice(&header);
                                    None
                                };
                                Framing::Body {
                                    remaining,
                                    text,
                                    held,
                                }
                            }
                        };
                        self.end_body_if_done(out);
                    }
                }
                Framing::Body {
                    remaining,
                    text,
                    held,
                } => {
                    let take = (*remaining).min(data.len());
                    let (body, rest) = std::mem::take(&mut data).split_at_mut(take);
                    if let Some(check) = text {
                        if check.query {
                            // All but the body's last byte.
                            let inner = take.min(*remaining - 1);
                            for b in body[..inner].iter_mut().filter(|b| **b == 0) {
                                *b = b' ';
                                check.error.get_or_insert_with(|| invalid_bytes(&[0]));
                            }
                        }
                        check.feed(body);
                    }
                    match held {
                        Some(h) => h.extend_from_slice(body),
                        None => out.extend_from_slice(body),
                    }
                    *remaining -= take;
                    data = rest;
                    self.end_body_if_done(out);
                }
            }
        }
    }

    fn end_body_if_done(&mut self, out: &mut Vec<u8>) {
        let Framing::Body {
            remaining: 0,
            text,
            held,
        } = &mut self.framing
        else {
            return;
        };
        let mut refused = false;
        if let Some(mut check) = text.take() {
            if check.strings_left > 0 && check.error.is_none() {
                check.error = check.utf8.finish();
            }
            if !check.query && check.error.is_none() {
                check.error = check.parse_tail_error();
            }
            refused = check.error.is_some();
            self.verdicts.push_back(check.error);
        }
        if let Some(held) = held.take() {
            if refused {
                out.extend_from_slice(&HARMLESS_PARSE);
            } else {
                out.extend_from_slice(&held);
            }
        }
        self.framing = Framing::Header {
            bytes: [0; 5],
            have: 0,
        };
    }
}

impl TextCheck {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && self.error.is_none() && self.strings_left > 0 {
            match data.iter().position(|b| *b == 0) {
                Some(end) => {
                    self.error = self.utf8.feed(&data[..end]).or_else(|| self.utf8.finish());
                    self.strings_left -= 1;
                    data = &data[end + 1..];
                }
                None => {
                    self.error = self.utf8.feed(data);
                    return;
                }
            }
        }
        if self.strings_left == 0 {
            for &b in data {
                if let Some(slot) = self.tail_count.get_mut(self.tail_len) {
                    *slot = b;
                }
                self.tail_len += 1;
            }
        }
    }

    /// A Parse must end with its parameter type count and exactly that many
    /// type OIDs, as PostgreSQL checks ("invalid message format"). A NUL
    /// inside the query text ends the text early, and the rest of the query
    /// then fails this check: `pgwire` would run the truncated query with
    /// parameter types read from the text.
    fn parse_tail_error(&self) -> Option<SqlError> {
        let count = i16::from_be_bytes(self.tail_count);
        let expected = usize::try_from(count).ok().map(|n| 2 + 4 * n);
        if self.strings_left == 0 && self.tail_len >= 2 && expected == Some(self.tail_len) {
            return None;
        }
        Some(SqlError::new(
            codes::PROTOCOL_VIOLATION,
            "invalid message format: a Parse message's query text must end at its only NUL, followed by its parameter types",
        ))
    }
}

impl AsyncRead for CheckedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_pos < this.ready.len() {
                let rest = &this.ready[this.ready_pos..];
                let n = rest.len().min(buf.remaining());
                buf.put_slice(&rest[..n]);
                this.ready_pos += n;
                if this.ready_pos == this.ready.len() {
                    this.ready.clear();
                    this.ready_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut incoming = ReadBuf::new(&mut this.incoming);
            match Pin::new(&mut this.inner).poll_read(cx, &mut incoming) {
                Poll::Ready(Ok(())) => {
                    let n = incoming.filled().len();
                    if n == 0 {
                        // End of stream (a Parse still held is incomplete).
                        return Poll::Ready(Ok(()));
                    }
                    this.scanner.scan(&mut this.incoming[..n], &mut this.ready);
                }
                other => return other,
            }
        }
    }
}

impl AsyncWrite for CheckedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(params: &[u8]) -> Vec<u8> {
        let mut p = ((8 + params.len()) as u32).to_be_bytes().to_vec();
        p.extend_from_slice(&196608u32.to_be_bytes());
        p.extend_from_slice(params);
        p
    }

    #[test]
    fn startup_packets_are_checked_like_postgresql() {
        assert!(classify(&startup(b"user\0root\0\0")).is_ok());
        assert!(classify(&startup(b"\0")).is_ok());
        for bad in [
            &b"user\0root\0"[..],
            b"user\0root",
            b"user",
            b"",
            b"user\0root\0\0x",
        ] {
            let e = classify(&startup(bad)).err().expect("refused");
            assert_eq!(e.code, "08P01", "{bad:?}");
        }
        let mut v2 = startup(b"user\0root\0\0");
        v2[4..8].copy_from_slice(&0x0002_0000u32.to_be_bytes());
        let e = classify(&v2).err().expect("refused");
        assert_eq!(e.code, "0A000");
        assert_eq!(
            e.message,
            "unsupported frontend protocol 2.0: server supports 3.0 to 3.0"
        );
    }

    #[test]
    fn text_must_be_utf8_without_nul() {
        assert_eq!(check_text("héllo".as_bytes()).expect("text"), "héllo");
        let e = check_text(b"a\0b").expect_err("nul");
        assert_eq!(e.code, "22021");
        assert_eq!(
            e.message,
            "invalid byte sequence for encoding \"UTF8\": 0x00"
        );
        let e = check_text(b"a\xffb").expect_err("bad byte");
        assert_eq!(
            e.message,
            "invalid byte sequence for encoding \"UTF8\": 0xff"
        );
        let e = check_text(b"ab\xc3").expect_err("truncated");
        assert_eq!(
            e.message,
            "invalid byte sequence for encoding \"UTF8\": 0xc3"
        );
    }

    #[test]
    fn utf8_sequences_split_across_reads_are_valid() {
        let text = "é€😀".as_bytes();
        for split in 0..text.len() {
            let mut scan = Utf8Scan::default();
            assert!(scan.feed(&text[..split]).is_none());
            assert!(scan.feed(&text[split..]).is_none());
            assert!(scan.finish().is_none());
        }
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// The type bytes of the messages in `stream`, following their lengths.
    fn framed_kinds(stream: &[u8]) -> Vec<u8> {
        let mut kinds = Vec::new();
        let mut rest = stream;
        while rest.len() >= 5 {
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            kinds.push(rest[0]);
            rest = &rest[(1 + len).min(rest.len())..];
        }
        kinds
    }

    /// The verdicts a stream of messages gets, fed one byte at a time and
    /// all at once.
    fn verdicts(stream: &[u8]) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for chunk in [1, stream.len().max(1)] {
            let mut scanner = Scanner::default();
            let mut bytes = stream.to_vec();
            let mut passed = Vec::new();
            for piece in bytes.chunks_mut(chunk) {
                scanner.scan(piece, &mut passed);
            }
            // A refused Parse reaches the decoder as an empty one; the
            // stream stays well framed.
            assert_eq!(framed_kinds(&passed).len(), framed_kinds(stream).len());
            let got: Vec<Option<String>> = scanner
                .verdicts
                .drain(..)
                .map(|v| v.map(|e| e.message))
                .collect();
            if out.is_empty() {
                out = got;
            } else {
                assert_eq!(out, got, "the same verdicts whatever the reads");
            }
        }
        out
    }

    #[test]
    fn query_and_parse_text_is_judged_across_reads() {
        let mut stream = message(b'Q', b"SELECT 'h\xc3\xa9'\0");
        stream.extend(message(b'Q', b"SELECT '\xff'\0"));
        stream.extend(message(b'S', b""));
        stream.extend(message(b'Q', b"SELECT 1\0; DROP\0"));
        stream.extend(message(b'P', b"s1\0SELECT $1\0\0\x01\0\0\0\x19"));
        stream.extend(message(b'P', b"\0SELECT '\xe2\x82'\0\0\0"));
        // A NUL inside a Parse's query: the text ends early and the rest of
        // the body is not a parameter type list.
        stream.extend(message(b'P', b"s2\0SELECT 1\0; DROP TABLE t\0\0\0"));
        stream.extend(message(b'P', b"s3\0SELECT 1\0\0\x02\0\0\0\x19"));
        stream.extend(message(b'P', b"s4\0SELECT 1\0\0\0"));
        let bad = |b: &str| Some(format!("invalid byte sequence for encoding \"UTF8\": {b}"));
        let format = Some("invalid message format: a Parse message's query text must end at its only NUL, followed by its parameter types".to_string());
        let mut one = Scanner::default();
        let mut passed = Vec::new();
        one.scan(
            &mut message(b'P', b"s2\0SELECT 1\0; DROP TABLE t\0\0\0"),
            &mut passed,
        );
        assert_eq!(passed, HARMLESS_PARSE);
        assert_eq!(
            verdicts(&stream),
            vec![
                None,
                bad("0xff"),
                bad("0x00"),
                None,
                bad("0xe2 0x82"),
                format.clone(),
                format,
                None
            ]
        );
    }
}
