//! A minimal HTTP/1.1 endpoint for status and metrics (`/_status/vars` in
//! Prometheus text format, `/health`). One request per connection, bounded
//! request size and time; anything malformed gets a 400 and the listener
//! carries on. A full web console comes later; this only needs GET.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head accepted.
const MAX_REQUEST: usize = 16 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP answer.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Routes a path to a reply.
pub type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let _ = handle(stream, handler).await;
                });
            }
        }
    }
}

async fn handle(mut stream: TcpStream, handler: Handler) -> std::io::Result<()> {
    let reply = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => Reply::text(408, "request timeout\n"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(None)) => Reply::text(400, "malformed request\n"),
        Ok(Ok(Some(head))) => route(&head, &handler),
    };
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(reply.body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads up to the blank line ending the request head; `None` if it is
/// too large or not text.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(String::from_utf8(buf).ok());
        }
        if buf.len() > MAX_REQUEST {
            return Ok(None);
        }
    }
}

fn route(head: &str, handler: &Handler) -> Reply {
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Reply::text(400, "malformed request line\n");
    };
    if !version.starts_with("HTTP/1.") {
        return Reply::text(400, "unsupported HTTP version\n");
    }
    if method != "GET" && method != "HEAD" {
        return Reply::text(405, "only GET is supported\n");
    }
    let path = target.split('?').next().unwrap_or(target);
    handler(path)
}

/// Prometheus text exposition: a gauge or counter with optional labels.
#[derive(Default)]
pub struct PromText {
    out: String,
}

impl PromText {
    pub fn metric(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        use std::fmt::Write;
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// A metric family with one sample per label set (`method="Get"`).
    pub fn labeled(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        use std::fmt::Write;
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    /// A histogram: cumulative `_bucket{le=…}` samples ending with `+Inf`,
    /// then `_sum` and `_count`.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        buckets: &[(f64, u64)],
        sum: f64,
        count: u64,
    ) {
        use std::fmt::Write;
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} histogram");
        for (le, n) in buckets {
            let le = if le.is_infinite() {
                "+Inf".to_string()
            } else {
                le.to_string()
            };
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{le}\"}} {n}");
        }
        let _ = writeln!(self.out, "{name}_sum {sum}");
        let _ = writeln!(self.out, "{name}_count {count}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(raw).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn serves_paths_and_survives_garbage() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handler: Handler = Arc::new(|path| match path {
            "/health" => Reply::text(200, "ok\n"),
            _ => Reply::text(404, "not found\n"),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, handler, async {
            let _ = rx.await;
        }));
        let ok = get(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.ends_with("ok\n"));
        let missing = get(addr, b"GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let garbage = get(addr, b"\xff\xfe\x00garbage\r\n\r\n").await;
        assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
        let post = get(addr, b"POST /health HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        // Still serving after all that.
        let again = get(addr, b"GET /health HTTP/1.0\r\n\r\n").await;
        assert!(again.starts_with("HTTP/1.1 200"), "{again}");
        let _ = tx.send(());
        server.await.expect("join");
    }

    #[test]
    fn prometheus_text_has_help_and_type() {
        let mut p = PromText::default();
        p.metric("ranges", "gauge", "Number of ranges.", 3.0);
        assert_eq!(
            p.finish(),
            "# HELP ranges Number of ranges.\n# TYPE ranges gauge\nranges 3\n"
        );
        let mut p = PromText::default();
        p.histogram("lat", "L.", &[(0.5, 1), (f64::INFINITY, 3)], 2.5, 3);
        p.labeled("req", "counter", "R.", &[("method=\"Get\"".into(), 4.0)]);
        assert_eq!(
            p.finish(),
            "# HELP lat L.\n# TYPE lat histogram\nlat_bucket{le=\"0.5\"} 1\n\
             lat_bucket{le=\"+Inf\"} 3\nlat_sum 2.5\nlat_count 3\n\
             # HELP req R.\n# TYPE req counter\nreq{method=\"Get\"} 4\n"
        );
    }
}
