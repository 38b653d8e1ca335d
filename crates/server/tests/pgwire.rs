//! The PostgreSQL wire protocol front end, end to end: a single node with its SQL
//! listener started in process, driven by `tokio-postgres` (simple and extended
//! protocol, prepared statements, binary format, errors, COPY) and by a raw
//! socket for what drivers never send (garbage, oversized messages) and what
//! they do not expose (the ReadyForQuery transaction status).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tardigrade_kv::Db;
use tardigrade_server::pgwire::SqlServer;
use tardigrade_server::{Server, ServerConfig};
use tardigrade_storage::StoreSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

struct Node {
    sql: SqlServer,
    _kv: Server,
}

async fn start() -> Node {
    let kv = Server::start(ServerConfig {
        store: StoreSpec::Memory,
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
    })
    .await
    .expect("start node");
    let db = Db::new(kv.store(), kv.clock());
    let sql = SqlServer::start("127.0.0.1:0".parse().expect("addr"), db, 1)
        .await
        .expect("start SQL");
    Node { sql, _kv: kv }
}

async fn connect_db(addr: SocketAddr, database: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=root dbname={database} connect_timeout=10",
            addr.ip(),
            addr.port()
        ),
        NoTls,
    )
    .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn connect(addr: SocketAddr) -> Client {
    connect_db(addr, "defaultdb").await.expect("connect")
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// A field of an ErrorResponse body (`C`: the SQLSTATE, `M`: the message).
fn error_field(body: &[u8], field: u8) -> String {
    body.split(|b| *b == 0)
        .find(|f| f.first() == Some(&field))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_default()
}

/// A minimal raw protocol client.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let mut stream = TcpStream::connect(addr).await.expect("tcp");
        let mut body = Vec::new();
        body.extend_from_slice(&196608i32.to_be_bytes());
        for (k, v) in [("user", "root"), ("database", "defaultdb")] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        stream.write_all(&msg).await.expect("startup");
        let mut raw = Raw { stream };
        let (status, _) = raw.until_ready().await.expect("ready after startup");
        assert_eq!(status, b'I');
        raw
    }

    async fn read_message(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).await.ok()?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        self.stream.read_exact(&mut body).await.ok()?;
        Some((header[0], body))
    }

    /// Reads until ReadyForQuery; returns its status byte and the message types seen.
    async fn until_ready(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut seen = Vec::new();
        loop {
            let (t, body) = tokio::time::timeout(Duration::from_secs(20), self.read_message())
                .await
                .ok()??;
            if t == b'Z' {
                return Some((*body.first()?, seen));
            }
            seen.push(t);
        }
    }

    async fn query(&mut self, sql: &str) -> (u8, Vec<u8>) {
        self.query_bytes(sql.as_bytes()).await;
        self.until_ready().await.expect("ready")
    }

    /// Sends a Query message holding exactly `text` (and its terminator).
    async fn query_bytes(&mut self, text: &[u8]) {
        let mut body = text.to_vec();
        body.push(0);
        self.send(b'Q', &body).await;
    }

    async fn send(&mut self, kind: u8, body: &[u8]) {
        let mut msg = vec![kind];
        msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        msg.extend_from_slice(body);
        self.stream.write_all(&msg).await.expect("send");
    }

    /// Reads until ReadyForQuery; the SQLSTATEs of the errors on the way.
    async fn errors_until_ready(&mut self) -> Vec<String> {
        let mut codes = Vec::new();
        loop {
            let (t, body) = tokio::time::timeout(Duration::from_secs(20), self.read_message())
                .await
                .expect("a reply in time")
                .expect("a message");
            match t {
                b'Z' => return codes,
                b'E' => codes.push(error_field(&body, b'C')),
                _ => {}
            }
        }
    }

    /// True when the server closed the connection (EOF or reset) within 10 s.
    async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_reports_parameters_and_transaction_control_works() {
    let node = start().await;
    let addr = node.sql.local_addr();
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=whoever dbname=defaultdb",
            addr.port()
        ),
        NoTls,
    )
    .await
    .expect("any user connects without a password");
    assert_eq!(
        connection.parameter("server_version"),
        Some("15.0.0 tardigrade")
    );
    assert_eq!(connection.parameter("client_encoding"), Some("UTF8"));
    assert_eq!(connection.parameter("DateStyle"), Some("ISO, MDY"));
    assert_eq!(connection.parameter("TimeZone"), Some("UTC"));
    assert_eq!(
        connection.parameter("standard_conforming_strings"),
        Some("on")
    );
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let out = client
        .simple_query("BEGIN; COMMIT; ROLLBACK")
        .await
        .expect("transaction control");
    let tags: Vec<u64> = out
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(tags.len(), 3, "{out:?}");
    client.simple_query("").await.expect("empty query");
    client.simple_query(" ; ; ").await.expect("only semicolons");
    client.batch_execute("BEGIN").await.expect("begin");
    client.batch_execute("COMMIT").await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_for_query_carries_the_transaction_status() {
    let node = start().await;
    let mut raw = Raw::connect(node.sql.local_addr()).await;
    assert_eq!(raw.query("BEGIN").await.0, b'T');
    let (status, seen) = raw.query("THIS IS NOT SQL").await;
    assert_eq!(status, b'E', "an error in a block fails the block");
    assert!(seen.contains(&b'E'), "ErrorResponse sent: {seen:?}");
    let (status, seen) = raw.query("BEGIN").await;
    assert_eq!(status, b'E', "still failed; {seen:?}");
    assert_eq!(raw.query("ROLLBACK").await.0, b'I');
    let (status, seen) = raw.query("").await;
    assert_eq!(status, b'I');
    assert_eq!(seen, vec![b'I'], "EmptyQueryResponse");
    let (status, seen) = raw.query("BEGIN; COMMIT").await;
    assert_eq!(status, b'I');
    assert_eq!(seen, vec![b'C', b'C']);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_sqlstate_and_position_and_the_session_goes_on() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    let e = client
        .simple_query("SELEC 1")
        .await
        .expect_err("syntax error");
    assert_eq!(code(&e), "42601", "{e:?}");
    let db = e.as_db_error().expect("db error");
    assert!(db.position().is_some(), "position reported: {db:?}");
    let e = client.prepare("SELEC $1").await.expect_err("bad prepare");
    assert_eq!(code(&e), "42601");
    client
        .batch_execute("BEGIN")
        .await
        .expect("session goes on");
    client.batch_execute("ROLLBACK").await.expect("rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_refused_at_connect() {
    let node = start().await;
    let Err(e) = connect_db(node.sql.local_addr(), "nosuchdb").await else {
        panic!("a missing database is refused");
    };
    assert_eq!(code(&e), "3D000", "{e:?}");
    let client = connect_db(node.sql.local_addr(), "postgres")
        .await
        .expect("postgres exists");
    client
        .batch_execute("CREATE DATABASE other")
        .await
        .expect("create database");
    connect_db(node.sql.local_addr(), "other")
        .await
        .expect("a created database can be connected to");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_messages_close_only_that_connection() {
    let node = start().await;
    let addr = node.sql.local_addr();
    let survivor = connect(addr).await;

    // Junk instead of a startup packet.
    let mut junk = TcpStream::connect(addr).await.expect("tcp");
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Raw { stream: junk };
    assert!(raw.closed().await, "junk startup closes the connection");

    // A started connection that sends an unknown message type, then one that
    // claims a 2 GiB message.
    let mut raw = Raw::connect(addr).await;
    raw.stream
        .write_all(&[b'!', 0, 0, 0, 8, 1, 2, 3, 4])
        .await
        .expect("write");
    assert!(
        raw.closed().await,
        "unknown message type closes the connection"
    );
    let mut raw = Raw::connect(addr).await;
    raw.stream
        .write_all(&[b'Q', 0x7f, 0xff, 0xff, 0xff, b'x'])
        .await
        .expect("write");
    assert!(
        raw.closed().await,
        "oversized message closes the connection"
    );
    // Random bytes after startup.
    let mut raw = Raw::connect(addr).await;
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = raw.stream.write_all(&noise).await;
    assert!(raw.closed().await, "noise closes the connection");

    survivor
        .batch_execute("BEGIN; COMMIT")
        .await
        .expect("others keep being served");
    let fresh = connect(addr).await;
    fresh
        .batch_execute("BEGIN; ROLLBACK")
        .await
        .expect("new connections too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_requests_do_not_disturb_the_session() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    let token = client.cancel_token();
    token
        .cancel_query(NoTls)
        .await
        .expect("cancel with nothing running");
    client
        .batch_execute("BEGIN; COMMIT")
        .await
        .expect("still usable");
}

/// A cancel request during a statement: the statement ends with 57014 if it was
/// still running (cancellation takes effect at the statement's await points: KV
/// requests, and the executor's CPU-bound loops yield every few thousand rows),
/// and either way the session stays usable; a statement cancelled inside a
/// block aborts the block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_during_a_statement() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    let slow = "SELECT count(*) FROM generate_series(1, 1000) a, generate_series(1, 1000) b";
    for in_block in [false, true] {
        if in_block {
            client.batch_execute("BEGIN").await.expect("begin");
        }
        let token = client.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            token.cancel_query(NoTls).await.expect("cancel request");
        });
        match client.simple_query(slow).await {
            Ok(_) => println!("note: the statement finished before the cancel took effect"),
            Err(e) => {
                assert_eq!(code(&e), "57014", "{e:?}");
                if in_block {
                    let e = client.simple_query("SELECT 1").await.expect_err("aborted");
                    assert_eq!(code(&e), "25P02");
                }
            }
        }
        canceller.await.expect("canceller");
        if in_block {
            client.batch_execute("ROLLBACK").await.expect("rollback");
        }
        client.batch_execute("SELECT 1").await.expect("usable");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_statement_cancels_it_and_releases_its_locks() {
    let node = start().await;
    let addr = node.sql.local_addr();
    let client = connect(addr).await;
    client
        .batch_execute(
            "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (1, 'a')",
        )
        .await
        .expect("setup");
    // A client takes a lock in a block, starts a statement that would run
    // for minutes, and hangs up while it runs.
    let mut raw = Raw::connect(addr).await;
    assert_eq!(raw.query("BEGIN").await.0, b'T');
    assert_eq!(
        raw.query("UPDATE kv SET v = 'locked' WHERE k = 1").await.0,
        b'T'
    );
    raw.query_bytes(
        b"SELECT count(*) FROM generate_series(1, 20000) a, generate_series(1, 20000) b",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(raw);
    // The statement stops, the session ends and its transaction rolls back:
    // another client gets the row at once, not after the statement.
    let updated = tokio::time::timeout(
        Duration::from_secs(15),
        client.execute("UPDATE kv SET v = 'mine' WHERE k = 1", &[]),
    )
    .await
    .expect("the hung-up client's statement was cancelled and its lock released")
    .expect("update");
    assert_eq!(updated, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_prepared_statements_and_formats() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    // Parameter types inferred by the server, results in binary (tokio-postgres
    // asks for binary results and sends binary parameters).
    let stmt = client
        .prepare("SELECT $1::INT8 + 1")
        .await
        .expect("prepare");
    assert_eq!(stmt.params(), &[tokio_postgres::types::Type::INT8]);
    assert_eq!(stmt.columns().len(), 1);
    for i in 0..3i64 {
        let row = client.query_one(&stmt, &[&i]).await.expect("execute");
        assert_eq!(row.get::<_, i64>(0), i + 1);
    }
    // Text, bool, float, NULL through binary format.
    let row = client
        .query_one(
            "SELECT $1::TEXT, $2::BOOL, $3::FLOAT8, $4::INT8",
            &[&"héllo", &true, &2.5f64, &None::<i64>],
        )
        .await
        .expect("typed params");
    assert_eq!(row.get::<_, String>(0), "héllo");
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, f64>(2), 2.5);
    assert_eq!(row.get::<_, Option<i64>>(3), None);
    // Text results through the simple protocol.
    let out = client.simple_query("SELECT 1, 'a'").await.expect("simple");
    let row = out
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((r.get(0).map(String::from), r.get(1).map(String::from)))
            }
            _ => None,
        })
        .expect("a row");
    assert_eq!(row, (Some("1".into()), Some("a".into())));
    // An error in the extended protocol, then the session continues.
    let e = client
        .query_one("SELECT 1 / $1::INT8", &[&0i64])
        .await
        .expect_err("division by zero");
    assert_eq!(code(&e), "22012");
    let row = client.query_one("SELECT 7", &[]).await.expect("goes on");
    assert_eq!(
        row.get::<_, i32>(0),
        7,
        "an integer literal is int4, as in PostgreSQL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_in_binary_format() {
    use tokio_postgres::types::Type;
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    // Results: int8[] and text[] in binary, NULL elements as None.
    let row = client
        .query_one(
            "SELECT ARRAY[1, 2, 3]::INT8[], ARRAY['a', 'b c', ''], ARRAY[1, NULL]::INT8[], \
             '{}'::TEXT[], NULL::INT[]",
            &[],
        )
        .await
        .expect("arrays");
    assert_eq!(row.columns()[0].type_(), &Type::INT8_ARRAY);
    assert_eq!(row.columns()[1].type_(), &Type::TEXT_ARRAY);
    assert_eq!(row.get::<_, Vec<i64>>(0), vec![1, 2, 3]);
    assert_eq!(row.get::<_, Vec<String>>(1), vec!["a", "b c", ""]);
    assert_eq!(row.get::<_, Vec<Option<i64>>>(2), vec![Some(1), None]);
    assert_eq!(row.get::<_, Vec<String>>(3), Vec::<String>::new());
    // INT is INT8 here, in casts as in columns (as in CockroachDB).
    assert_eq!(row.columns()[4].type_(), &Type::INT8_ARRAY);
    assert_eq!(row.get::<_, Option<Vec<i64>>>(4), None);
    // Parameters: binary arrays in, a table column round trip.
    client
        .batch_execute("CREATE TABLE arr (id INT PRIMARY KEY, a INT8[], b TEXT[])")
        .await
        .expect("create");
    let stmt = client
        .prepare("INSERT INTO arr VALUES ($1, $2, $3)")
        .await
        .expect("prepare");
    assert_eq!(stmt.params()[1], Type::INT8_ARRAY);
    assert_eq!(stmt.params()[2], Type::TEXT_ARRAY);
    let a: Vec<Option<i64>> = vec![Some(7), None, Some(-1)];
    let b: Vec<String> = vec!["x".into(), "{y}".into()];
    client
        .execute(&stmt, &[&1i64, &a, &b])
        .await
        .expect("insert");
    let row = client
        .query_one(
            "SELECT a, b, a[1], cardinality(b) FROM arr WHERE $1 = ANY(b)",
            &[&"{y}"],
        )
        .await
        .expect("select");
    assert_eq!(row.get::<_, Vec<Option<i64>>>(0), a);
    assert_eq!(row.get::<_, Vec<String>>(1), b);
    // `= ANY($1)` types its parameter as an array of the other side's type.
    let ids: Vec<i64> = vec![3, 1];
    let count = client
        .query_one("SELECT count(*) FROM arr WHERE id = ANY($1)", &[&ids])
        .await
        .expect("= ANY($1)");
    assert_eq!(count.get::<_, i64>(0), 1);
    assert_eq!(row.get::<_, i64>(2), 7);
    assert_eq!(row.get::<_, i32>(3), 2);
    // Text format through the simple protocol.
    let out = client
        .simple_query("SELECT b FROM arr")
        .await
        .expect("simple");
    let text = out.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
        _ => None,
    });
    assert_eq!(text.as_deref(), Some(r#"{x,"{y}"}"#));
    // A text-format error is reported with its SQLSTATE; array_agg in binary.
    let e = client
        .query_one("SELECT '{1,2'::INT[]", &[])
        .await
        .expect_err("malformed");
    assert_eq!(code(&e), "22P02");
    let row = client
        .query_one("SELECT array_agg(id ORDER BY id) FROM arr", &[])
        .await
        .expect("array_agg");
    assert_eq!(row.get::<_, Vec<i64>>(0), vec![1], "INT columns are int8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dml_copy_and_a_vanished_client_releases_its_locks() {
    let node = start().await;
    let addr = node.sql.local_addr();
    let client = connect(addr).await;
    client
        .batch_execute("CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
        .await
        .expect("create table");
    let n = client
        .execute(
            "INSERT INTO kv VALUES ($1, $2), (2, 'two')",
            &[&1i64, &"one"],
        )
        .await
        .expect("insert");
    assert_eq!(n, 2, "INSERT 0 2");

    // COPY in text format through the extended protocol (tokio-postgres).
    use futures::SinkExt;
    let sink = client
        .copy_in::<_, bytes::Bytes>("COPY kv (k, v) FROM STDIN")
        .await
        .expect("copy in");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"3\tthree\n4\t\\N\n5\tfi"))
        .await
        .expect("data");
    sink.send(bytes::Bytes::from_static(b"ve\n"))
        .await
        .expect("data");
    let copied = sink.finish().await.expect("copy done");
    assert_eq!(copied, 3);
    let rows = client
        .query("SELECT k, v FROM kv ORDER BY k", &[])
        .await
        .expect("select");
    let got: Vec<(i64, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            (1, Some("one".into())),
            (2, Some("two".into())),
            (3, Some("three".into())),
            (4, None),
            (5, Some("five".into())),
        ]
    );

    // A client writes in a block and vanishes without a word.
    let vanishing = connect(addr).await;
    vanishing.batch_execute("BEGIN").await.expect("begin");
    vanishing
        .batch_execute("UPDATE kv SET v = 'locked' WHERE k = 1")
        .await
        .expect("update under a lock");
    drop(vanishing);
    let other = connect(addr).await;
    let updated = tokio::time::timeout(
        Duration::from_secs(10),
        other.execute("UPDATE kv SET v = 'mine' WHERE k = 1", &[]),
    )
    .await
    .expect("the lock is released without waiting for expiry")
    .expect("update");
    assert_eq!(updated, 1);
    let row = other
        .query_one("SELECT v FROM kv WHERE k = 1", &[])
        .await
        .expect("select");
    assert_eq!(row.get::<_, String>(0), "mine");

    // Bad COPY data is an error and the session goes on.
    let sink = client
        .copy_in::<_, bytes::Bytes>("COPY kv FROM STDIN")
        .await
        .expect("copy in");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"notanumber\tx\n"))
        .await
        .expect("data");
    assert!(sink.finish().await.is_err(), "bad data is refused");
    let count = client
        .query_one("SELECT count(*) FROM kv", &[])
        .await
        .expect("count");
    assert_eq!(count.get::<_, i64>(0), 5, "COPY is atomic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_at_once() {
    let node = start().await;
    let addr = node.sql.local_addr();
    let mut tasks = Vec::new();
    let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..20 {
        let ok = ok.clone();
        tasks.push(tokio::spawn(async move {
            let c = connect(addr).await;
            for _ in 0..5 {
                c.batch_execute("BEGIN; COMMIT").await.expect("txn");
            }
            ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(ok.load(std::sync::atomic::Ordering::Relaxed), 20);
}

/// A query's rows stream to the client while it runs: with a statement
/// budget (256 KiB) far below the size of its result
/// (5,000 rows of 200 characters), SELECT of the whole table succeeds through
/// the simple and the extended protocol, in order and complete. The same
/// query run where its result is collected (an embedded session, or a
/// simple query string of two statements) fails with 53200 instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_results_stream_to_the_client_instead_of_being_collected() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    client
        .batch_execute(
            "CREATE TABLE big (k INT PRIMARY KEY, s TEXT); \
             INSERT INTO big SELECT k, repeat('y', 200) FROM generate_series(1, 5000) AS g(k)",
        )
        .await
        .expect("load");
    node.sql.node().temp_storage.set_workmem(16 << 10);
    node.sql.node().temp_storage.set_statement_budget(256 << 10);

    let messages = client
        .simple_query("SELECT k, s FROM big")
        .await
        .expect("simple protocol");
    let mut keys = Vec::new();
    for m in &messages {
        if let SimpleQueryMessage::Row(r) = m {
            keys.push(r.get(0).and_then(|k| k.parse::<i64>().ok()).expect("k"));
            assert_eq!(r.get(1).map(str::len), Some(200));
        }
    }
    assert_eq!(keys, (1..=5000).collect::<Vec<i64>>());
    assert!(
        matches!(
            messages.last(),
            Some(SimpleQueryMessage::CommandComplete(5000))
        ),
        "{:?}",
        messages.last()
    );

    let rows = client
        .query(
            "SELECT k, s FROM big WHERE k > $1 ORDER BY k DESC",
            &[&0i64],
        )
        .await
        .expect("extended protocol");
    assert_eq!(rows.len(), 5000);
    assert_eq!(rows[0].get::<_, i64>(0), 5000);
    assert_eq!(rows[4999].get::<_, i64>(0), 1);

    // Collected results are held to the budget.
    let mut session = node.sql.node().session("root", "defaultdb");
    let collected = session.simple_query("SELECT k, s FROM big").await;
    match collected.last() {
        Some(Err(e)) => assert_eq!(e.code, "53200"),
        other => panic!("expected 53200, got {other:?}"),
    }
    let two = client
        .simple_query("SELECT 1; SELECT k, s FROM big")
        .await
        .expect_err("two statements collect their rows");
    assert_eq!(code(&two), "53200");
    // The connection goes on.
    let n = client
        .query_one("SELECT count(*) FROM big", &[])
        .await
        .expect("count");
    assert_eq!(n.get::<_, i64>(0), 5000);
}

/// Reads a `COPY … TO STDOUT` through the extended protocol (as drivers do).
async fn copy_out(client: &Client, sql: &str) -> Result<String, tokio_postgres::Error> {
    use futures::StreamExt;
    let stream = client.copy_out(sql).await?;
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(String::from_utf8(out).expect("utf8"))
}

/// `COPY … TO STDOUT` exports a table, some of its columns or a query's rows
/// in PostgreSQL's text and CSV formats (escapes, quoting, NULLs, headers),
/// through the extended protocol and the simple one; what it exports loads
/// back with COPY FROM; a large export streams under a tiny statement
/// budget; errors carry their SQLSTATE and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_stdout_exports_in_text_and_csv() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    client
        .batch_execute(
            "CREATE TABLE e (k INT PRIMARY KEY, s TEXT, f FLOAT); \
             INSERT INTO e VALUES (1, 'tab\there', 1.5), (2, NULL, NULL), \
             (3, 'say \"hi\", ok', -2), (4, '', 0), (5, 'back\\slash\nline', 3)",
        )
        .await
        .expect("load");

    assert_eq!(
        copy_out(&client, "COPY e TO STDOUT").await.expect("text"),
        "1\ttab\\there\t1.5\n2\t\\N\t\\N\n3\tsay \"hi\", ok\t-2\n4\t\t0\n\
         5\tback\\\\slash\\nline\t3\n"
    );
    assert_eq!(
        copy_out(
            &client,
            "COPY e (k, s) TO STDOUT WITH (FORMAT csv, HEADER true)"
        )
        .await
        .expect("csv"),
        "k,s\n1,tab\there\n2,\n3,\"say \"\"hi\"\", ok\"\n4,\"\"\n5,\"back\\slash\nline\"\n"
    );
    assert_eq!(
        copy_out(
            &client,
            "COPY (SELECT k * 10, s IS NULL FROM e WHERE k < 3) TO STDOUT"
        )
        .await
        .expect("query"),
        "10\tf\n20\tt\n"
    );

    // Simple protocol, as psql sends it: CopyOutResponse, a CopyData per
    // row, CopyDone, CommandComplete.
    let mut raw = Raw::connect(node.sql.local_addr()).await;
    let (status, seen) = raw.query("COPY e TO STDOUT WITH CSV").await;
    assert_eq!(status, b'I');
    assert_eq!(seen, b"HdddddcC".to_vec());
    let (_, seen) = raw.query("COPY nosuch TO STDOUT").await;
    assert_eq!(seen, b"E");

    // Round trip through COPY FROM.
    let text = copy_out(&client, "COPY e TO STDOUT").await.expect("export");
    client
        .batch_execute("CREATE TABLE e2 (k INT PRIMARY KEY, s TEXT, f FLOAT)")
        .await
        .expect("create");
    {
        use futures::SinkExt;
        let sink = client
            .copy_in::<_, bytes::Bytes>("COPY e2 FROM STDIN")
            .await
            .expect("copy in");
        let mut sink = std::pin::pin!(sink);
        sink.send(bytes::Bytes::from(text)).await.expect("data");
        assert_eq!(sink.finish().await.expect("finish"), 5);
    }
    let same = client
        .query_one(
            "SELECT count(*) FROM e JOIN e2 ON e.k = e2.k \
             WHERE e.s IS NOT DISTINCT FROM e2.s AND e.f IS NOT DISTINCT FROM e2.f",
            &[],
        )
        .await
        .expect("compare");
    assert_eq!(same.get::<_, i64>(0), 5);

    // A large export streams: 5,000 rows of 200 characters under 256 KiB.
    client
        .batch_execute(
            "CREATE TABLE big (k INT PRIMARY KEY, s TEXT); \
             INSERT INTO big SELECT k, repeat('z', 200) FROM generate_series(1, 5000) AS g(k)",
        )
        .await
        .expect("big");
    node.sql.node().temp_storage.set_statement_budget(256 << 10);
    let big = copy_out(&client, "COPY big TO STDOUT")
        .await
        .expect("big export");
    assert_eq!(big.lines().count(), 5000);
    assert!(big.starts_with(&format!("1\t{}\n", "z".repeat(200))));

    let missing = copy_out(&client, "COPY nosuch TO STDOUT")
        .await
        .expect_err("unknown table");
    assert_eq!(code(&missing), "42P01");
    let file = client
        .simple_query("COPY e TO '/tmp/e.txt'")
        .await
        .expect_err("server-side file");
    assert_eq!(code(&file), "0A000");
    let n = client
        .query_one("SELECT count(*) FROM e", &[])
        .await
        .expect("the session goes on");
    assert_eq!(n.get::<_, i64>(0), 5);
}

/// `first <op> rest <op> rest …` with `n` branches.
fn chain(first: &str, op: &str, rest: &str, n: usize) -> String {
    let mut sql = first.to_string();
    for _ in 1..n {
        sql.push_str(&format!(" {op} {rest}"));
    }
    sql
}

/// The single value of a one-row, one-column simple query.
async fn simple_value(client: &Client, sql: &str) -> String {
    let out = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", &sql[..60.min(sql.len())]));
    out.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(String::from),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_set_operation_branches_are_answered() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    let union = chain("SELECT 1", "UNION ALL", "SELECT 1", 5000);
    let count = format!("SELECT count(*) FROM ({union}) AS q");
    assert_eq!(simple_value(&client, &count).await, "5000");
    let row = client
        .query_one(count.as_str(), &[])
        .await
        .expect("extended");
    assert_eq!(row.get::<_, i64>(0), 5000);
    let rows = client
        .simple_query(&union)
        .await
        .expect("the rows themselves");
    let n = rows
        .iter()
        .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
        .count();
    assert_eq!(n, 5000);
    let intersect = chain(
        "SELECT * FROM (VALUES (1), (2), (3)) AS v(x)",
        "INTERSECT",
        "SELECT * FROM (VALUES (2), (3), (4)) AS v(x)",
        3500,
    );
    let count = format!("SELECT count(*) FROM ({intersect}) AS q");
    assert_eq!(simple_value(&client, &count).await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_too_deep_get_54001_and_the_connection_goes_on() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    let too_deep = [
        format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("SELECT {}", chain("1", "+", "1", 100_000)),
        format!("SELECT 1 WHERE {}", chain("true", "OR", "false", 100_000)),
        chain("SELECT 1", "UNION SELECT 1 EXCEPT", "SELECT 1", 3_000),
        format!("SELECT {}", "NOT ".repeat(100_000) + "true"),
    ];
    for sql in &too_deep {
        let e = client.simple_query(sql).await.expect_err("too deep");
        assert_eq!(code(&e), "54001", "{}: {e:?}", &sql[..40]);
        assert_eq!(simple_value(&client, "SELECT 1").await, "1");
        let e = client.prepare(sql).await.expect_err("too deep to prepare");
        assert_eq!(code(&e), "54001", "{}: {e:?}", &sql[..40]);
        let row = client.query_one("SELECT 1", &[]).await.expect("goes on");
        assert_eq!(row.get::<_, i32>(0), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_startup_packets_are_refused_and_closed() {
    let node = start().await;
    let addr = node.sql.local_addr();
    let survivor = connect(addr).await;
    let v3 = 196608u32.to_be_bytes();
    let packet = |len: u32, body: &[u8]| {
        let mut p = len.to_be_bytes().to_vec();
        p.extend_from_slice(body);
        p
    };
    let with_params = |version: [u8; 4], params: &[u8]| {
        let mut body = version.to_vec();
        body.extend_from_slice(params);
        packet(body.len() as u32 + 4, &body)
    };
    // (what is sent, the SQLSTATE of the FATAL error before the close)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("length 4", packet(4, b""), "08P01"),
        ("length 0", packet(0, b""), "08P01"),
        ("length 2 GiB", packet(0x7fff_ffff, &v3), "08P01"),
        ("length 20,000", packet(20_000, &v3), "08P01"),
        (
            "no terminators",
            with_params(v3, b"user\0root\0database\0defaultdb"),
            "08P01",
        ),
        (
            "no final terminator",
            with_params(v3, b"user\0root\0"),
            "08P01",
        ),
        (
            "bytes after the terminator",
            with_params(v3, b"user\0root\0\0junk"),
            "08P01",
        ),
        (
            "protocol 2.0",
            with_params(0x0002_0000u32.to_be_bytes(), b"user\0root\0\0"),
            "0A000",
        ),
        (
            "protocol 9.9",
            with_params(0x0009_0009u32.to_be_bytes(), b"user\0root\0\0"),
            "0A000",
        ),
    ];
    for (what, bytes, expected) in cases {
        let mut stream = TcpStream::connect(addr).await.expect("tcp");
        stream.write_all(&bytes).await.expect("write");
        let mut raw = Raw { stream };
        let (t, body) = tokio::time::timeout(Duration::from_secs(10), raw.read_message())
            .await
            .unwrap_or_else(|_| panic!("{what}: no reply"))
            .unwrap_or_else(|| panic!("{what}: closed without an error"));
        assert_eq!(t, b'E', "{what}");
        assert_eq!(error_field(&body, b'S'), "FATAL", "{what}");
        assert_eq!(error_field(&body, b'C'), expected, "{what}");
        assert!(raw.closed().await, "{what}: the connection is closed");
    }
    // An SSL request is declined, and a startup after it works.
    let mut stream = TcpStream::connect(addr).await.expect("tcp");
    stream
        .write_all(&packet(8, &80877103u32.to_be_bytes()))
        .await
        .expect("ssl request");
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.expect("answer");
    assert_eq!(&answer, b"N");
    stream
        .write_all(&with_params(v3, b"user\0root\0\0"))
        .await
        .expect("startup");
    let mut raw = Raw { stream };
    assert_eq!(raw.until_ready().await.map(|r| r.0), Some(b'I'));
    assert_eq!(simple_value(&survivor, "SELECT 1").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_text_must_be_utf8_without_nul_bytes() {
    let node = start().await;
    let mut raw = Raw::connect(node.sql.local_addr()).await;
    for bad in [
        &b"SELECT '\xff'"[..],
        b"SELECT '\xc3\x28'",
        b"SELECT 'abc\xe2\x82'",
        b"SELECT 1\0SELECT 2",
    ] {
        raw.query_bytes(bad).await;
        assert_eq!(raw.errors_until_ready().await, vec!["22021"], "{bad:?}");
        assert_eq!(raw.query("SELECT 1").await, (b'I', vec![b'T', b'D', b'C']));
    }
    // In a block, the error fails the block, as any statement's error does.
    assert_eq!(raw.query("BEGIN").await.0, b'T');
    raw.query_bytes(b"SELECT '\xff'").await;
    assert_eq!(raw.errors_until_ready().await, vec!["22021"]);
    assert_eq!(raw.query("SELECT 1").await.0, b'E');
    assert_eq!(raw.query("ROLLBACK").await.0, b'I');
    // Parse: the statement name and text are checked too; the error skips to
    // Sync.
    let mut parse = b"s1\0SELECT '\xff'\0".to_vec();
    parse.extend_from_slice(&0u16.to_be_bytes());
    raw.send(b'P', &parse).await;
    raw.send(b'S', b"").await;
    assert_eq!(raw.errors_until_ready().await, vec!["22021"]);
    // A NUL inside a Parse's text ends it early, and the rest cannot be its
    // parameter types: 08P01, as PostgreSQL answers ("invalid message
    // format"), and the messages after it are read as sent. Here the rest
    // would be read as 15,136 types, past the message's end.
    raw.send(b'P', b"s2\0SELECT 1\0; DROP TABLE t\0\0\0").await;
    raw.send(b'S', b"").await;
    assert_eq!(raw.errors_until_ready().await, vec!["08P01"]);
    let mut missing_types = b"s3\0SELECT 1\0\0\x01\0\0\0\x17".to_vec();
    missing_types.truncate(missing_types.len() - 4);
    raw.send(b'P', &missing_types).await;
    raw.send(b'S', b"").await;
    assert_eq!(raw.errors_until_ready().await, vec!["08P01"]);
    assert_eq!(raw.query("SELECT 1").await, (b'I', vec![b'T', b'D', b'C']));
    // Valid UTF-8 (U+FFFD itself included) is fine.
    let (status, seen) = raw.query("SELECT 'é€😀\u{fffd}'").await;
    assert_eq!((status, seen), (b'I', vec![b'T', b'D', b'C']));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_in_text_parameters_are_refused() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    client
        .batch_execute("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)")
        .await
        .expect("create");
    // tokio-postgres sends text parameters in binary format.
    let e = client
        .execute("INSERT INTO notes VALUES (1, $1)", &[&"a\0b"])
        .await
        .expect_err("NUL refused");
    assert_eq!(code(&e), "22021");
    assert_eq!(
        e.as_db_error().map(|d| d.message().to_string()),
        Some("invalid byte sequence for encoding \"UTF8\": 0x00".to_string())
    );
    // The same in text format, by hand: Parse, Bind (format 0), Execute, Sync.
    let mut raw = Raw::connect(node.sql.local_addr()).await;
    let mut parse = b"\0INSERT INTO notes VALUES (2, $1)\0".to_vec();
    parse.extend_from_slice(&0u16.to_be_bytes());
    raw.send(b'P', &parse).await;
    let mut bind = b"\0\0".to_vec();
    bind.extend_from_slice(&1u16.to_be_bytes()); // one format code
    bind.extend_from_slice(&0u16.to_be_bytes()); // text
    bind.extend_from_slice(&1u16.to_be_bytes()); // one parameter
    bind.extend_from_slice(&3u32.to_be_bytes());
    bind.extend_from_slice(b"a\0b");
    bind.extend_from_slice(&0u16.to_be_bytes()); // result formats
    raw.send(b'B', &bind).await;
    raw.send(b'E', b"\0\0\0\0\0").await;
    raw.send(b'S', b"").await;
    assert_eq!(raw.errors_until_ready().await, vec!["22021"]);
    let row = client
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .expect("count");
    assert_eq!(row.get::<_, i64>(0), 0, "nothing was stored");
    client
        .execute("INSERT INTO notes VALUES (3, $1)", &[&"fine"])
        .await
        .expect("valid text is stored");
}

/// Binary COPY data for `rows` of (id int8, name text) fields.
fn binary_copy_data(rows: &[(i64, Option<&str>)]) -> Vec<u8> {
    let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
    out.extend_from_slice(&[0; 8]);
    for (id, name) in rows {
        out.extend_from_slice(&2i16.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&id.to_be_bytes());
        match name {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(s) => {
                out.extend_from_slice(&(s.len() as i32).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

impl Raw {
    /// Starts `COPY … FROM STDIN` with a simple Query and reads its
    /// CopyInResponse; returns the response's overall format byte.
    async fn start_copy_in(&mut self, sql: &str) -> u8 {
        self.query_bytes(sql.as_bytes()).await;
        let (t, body) = tokio::time::timeout(Duration::from_secs(20), self.read_message())
            .await
            .expect("a reply in time")
            .expect("a message");
        assert_eq!(
            t,
            b'G',
            "CopyInResponse expected: {}",
            error_field(&body, b'M')
        );
        body[0]
    }

    /// Runs a binary `COPY … TO STDOUT` with a simple Query; returns the
    /// bytes of its CopyData messages.
    async fn copy_out_bytes(&mut self, sql: &str) -> Vec<u8> {
        self.query_bytes(sql.as_bytes()).await;
        let mut out = Vec::new();
        let mut seen = Vec::new();
        loop {
            let (t, body) = tokio::time::timeout(Duration::from_secs(20), self.read_message())
                .await
                .expect("a reply in time")
                .expect("a message");
            match t {
                b'Z' => break,
                b'H' => assert_eq!(body[0], 1, "binary CopyOutResponse"),
                b'd' => out.extend_from_slice(&body),
                b'E' => panic!("{}", error_field(&body, b'M')),
                _ => {}
            }
            seen.push(t);
        }
        assert_eq!(seen.first(), Some(&b'H'), "{sql}");
        assert!(seen.ends_with(b"cC"), "{sql}: {seen:?}");
        out
    }

    /// Sends `chunks` as CopyData messages, then CopyDone; returns the
    /// errors until ReadyForQuery.
    async fn copy_chunks(&mut self, chunks: &[&[u8]]) -> Vec<String> {
        for c in chunks {
            self.send(b'd', c).await;
        }
        self.send(b'c', b"").await;
        self.errors_until_ready().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_in_and_out_and_malformed_input() {
    let node = start().await;
    let mut raw = Raw::connect(node.sql.local_addr()).await;
    assert_eq!(
        raw.query("CREATE TABLE bc (id INT8 PRIMARY KEY, name TEXT)")
            .await
            .0,
        b'I'
    );
    let copy_in = "COPY bc FROM STDIN (FORMAT BINARY)";
    assert_eq!(raw.start_copy_in(copy_in).await, 1, "binary CopyInResponse");
    let data = binary_copy_data(&[(1, Some("one")), (2, None), (3, Some(""))]);
    // a tuple split across CopyData messages
    let (a, b) = data.split_at(30);
    assert_eq!(raw.copy_chunks(&[a, b]).await, Vec::<String>::new());

    let good = binary_copy_data(&[(10, Some("ten"))]);
    let mut short_field = good[..19].to_vec();
    short_field.extend_from_slice(&1i16.to_be_bytes());
    short_field.extend_from_slice(&3i32.to_be_bytes());
    short_field.extend_from_slice(b"abc");
    let mut huge_length = good[..19].to_vec();
    huge_length.extend_from_slice(&1i16.to_be_bytes());
    huge_length.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut after_trailer = good.clone();
    after_trailer.extend_from_slice(b"more");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("text data", b"10\tten\n".to_vec(), "22P04"),
        ("no data", Vec::new(), "22P04"),
        ("truncated", good[..good.len() - 6].to_vec(), "22P04"),
        (
            "negative field count",
            {
                let mut d = good[..19].to_vec();
                d.extend_from_slice(&(-5i16).to_be_bytes());
                d
            },
            "22P04",
        ),
        ("field length past the end", huge_length, "22P04"),
        ("data after the trailer", after_trailer, "22P04"),
        ("wrong field count", short_field.clone(), "22P04"),
        (
            "3 bytes for an int8",
            {
                let mut d = good[..19].to_vec();
                d.extend_from_slice(&2i16.to_be_bytes());
                d.extend_from_slice(&3i32.to_be_bytes());
                d.extend_from_slice(b"abc");
                d.extend_from_slice(&(-1i32).to_be_bytes());
                d
            },
            "22P03",
        ),
    ];
    for (what, data, code) in &cases {
        assert_eq!(raw.start_copy_in(copy_in).await, 1, "{what}");
        assert_eq!(
            raw.copy_chunks(&[data]).await,
            vec![code.to_string()],
            "{what}"
        );
        // the session goes on (ParameterStatus messages may come along
        // after the COPY's rollback)
        let (status, mut seen) = raw.query("SELECT count(*) FROM bc").await;
        seen.retain(|t| *t != b'S');
        assert_eq!((status, seen), (b'I', vec![b'T', b'D', b'C']), "{what}");
    }
    // In a block, a failed COPY fails the block.
    assert_eq!(raw.query("BEGIN").await.0, b'T');
    raw.start_copy_in(copy_in).await;
    assert_eq!(raw.copy_chunks(&[b"garbage"]).await, vec!["22P04"]);
    assert_eq!(raw.query("SELECT 1").await.0, b'E');
    assert_eq!(raw.query("ROLLBACK").await.0, b'I');

    // COPY … TO STDOUT (FORMAT BINARY): what went in comes back, byte for
    // byte in PostgreSQL's format; with no rows, the header and the trailer.
    let export = "COPY (SELECT id, name FROM bc ORDER BY id) TO STDOUT (FORMAT BINARY)";
    assert_eq!(raw.copy_out_bytes(export).await, data);
    let export = "COPY (SELECT id, name FROM bc WHERE id < 0) TO STDOUT (FORMAT BINARY)";
    assert_eq!(raw.copy_out_bytes(export).await, binary_copy_data(&[]));
}

/// AS OF SYSTEM TIME through a driver: the extended protocol describes the
/// query with the columns of that time and binds its parameters, and the
/// errors carry CockroachDB's codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_system_time_over_the_extended_protocol() {
    let node = start().await;
    let client = connect(node.sql.local_addr()).await;
    client
        .batch_execute(
            "CREATE TABLE h (k INT PRIMARY KEY, v TEXT); INSERT INTO h VALUES (1, 'old')",
        )
        .await
        .expect("setup");
    let then: String = client
        .query_one("SELECT cluster_logical_timestamp()::TEXT", &[])
        .await
        .expect("timestamp")
        .get(0);
    client
        .batch_execute("UPDATE h SET v = 'new'; ALTER TABLE h ADD COLUMN w INT DEFAULT 0")
        .await
        .expect("changes");
    let historical = client
        .prepare(&format!(
            "SELECT * FROM h AS OF SYSTEM TIME {then} WHERE k = $1"
        ))
        .await
        .expect("prepare");
    assert_eq!(historical.columns().len(), 2);
    let row = client
        .query_one(&historical, &[&1i64])
        .await
        .expect("historical row");
    assert_eq!(row.get::<_, String>(1), "old");
    let now: String = client
        .query_one("SELECT v FROM h WHERE k = 1", &[])
        .await
        .expect("current row")
        .get(0);
    assert_eq!(now, "new");
    // A transaction that reads then.
    client
        .batch_execute(&format!("BEGIN AS OF SYSTEM TIME {then}"))
        .await
        .expect("begin");
    let v: String = client
        .query_one("SELECT v FROM h WHERE k = $1", &[&1i64])
        .await
        .expect("read in the block")
        .get(0);
    assert_eq!(v, "old");
    let e = client
        .execute("INSERT INTO h VALUES (2, 'x')", &[])
        .await
        .expect_err("read-only");
    assert_eq!(code(&e), "25006");
    client.batch_execute("ROLLBACK").await.expect("rollback");
    let e = client
        .query("SELECT * FROM h AS OF SYSTEM TIME '2200-01-01'", &[])
        .await
        .expect_err("future");
    assert_eq!(code(&e), "XXUUU");
}
