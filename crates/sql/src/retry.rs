//! Transactions of their own, retried: what the background work of schema
//! changes ([`crate::schemachange`]) and of clearing dropped data
//! ([`crate::gc`]) runs in.
//!
//! Takes the node ([`SqlNode`]: its KV handle) and a closure that does one
//! attempt's work in the transaction it is given; gives the closure's result
//! once a transaction committed ([`in_txn`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tardigrade_kv::Txn;
use tardigrade_sqltypes::SqlResult;
use tardigrade_sqltypes::error::codes;

use crate::catalog::kv_err;
use crate::node::SqlNode;

/// Attempts of one transaction of the protocol on 40001.
const RETRIES: usize = 50;
/// Attempts of an idempotent transaction on errors that may be transient.
const TRANSIENT_RETRIES: usize = 5;

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs `f` in a transaction and commits it, retrying on 40001; `f` gets the
/// attempt number (1, 2, …). An `idempotent` transaction (a backfill chunk,
/// the rollback, a page of a clear: running one twice, or after a commit
/// whose outcome was unknown, changes nothing) is also retried, with a
/// growing pause, on errors that may be transient — 40003 (ambiguous
/// result), 57P03 (a range unavailable) and XX000 (other KV errors; `not
/// leaseholder`, seen here on an overloaded node, is now a 40001) — so that
/// one of them does not throw away a long backfill.
pub(crate) async fn in_txn<T: Send>(
    node: &SqlNode,
    name: &str,
    idempotent: bool,
    mut f: impl for<'t> FnMut(&'t mut Txn, usize) -> BoxFut<'t, SqlResult<T>>,
) -> SqlResult<T> {
    let mut attempt = 0;
    let mut transient = 0;
    loop {
        attempt += 1;
        let mut txn = node.db.txn(name);
        let result = match f(&mut txn, attempt).await {
            Ok(v) => txn.commit().await.map(|()| v).map_err(kv_err),
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        };
        match result {
            Err(e) if e.code == codes::SERIALIZATION_FAILURE && attempt < RETRIES => {
                tracing::debug!(attempt, error = %e, "retrying a schema change transaction");
            }
            Err(e)
                if idempotent
                    && transient < TRANSIENT_RETRIES
                    && [
                        codes::STATEMENT_COMPLETION_UNKNOWN,
                        crate::error::RANGE_UNAVAILABLE,
                        codes::INTERNAL_ERROR,
                    ]
                    .contains(&e.code) =>
            {
                transient += 1;
                tracing::info!(name, transient, error = %e, "retrying after a possibly transient error");
                tokio::time::sleep(Duration::from_millis(500) * transient as u32).await;
            }
            other => return other,
        }
    }
}
