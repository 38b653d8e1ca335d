//! Pieces of the lookup and merge joins (their operators are in
//! [`super::operator`]): joining one left row with its candidates, and one batch
//! of lookups. Both joins handle inner, left, semi and anti joins and keep the left input's
//! order: a left row's matches are emitted before the next left row's. NULL
//! keys never match.

use std::collections::HashMap;

use tardigrade_encoding::{Direction, keys};
use tardigrade_kvpb::{KeyValue, Request, Response, Span};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use super::Executor;
use super::batch::Batch;
use super::eval::{EvalCtx, eval_predicate};
use crate::plan::{JoinKind, LookupJoin, Row, Scalar};
use crate::rowenc;

pub(super) fn unsupported_kind(kind: JoinKind) -> SqlError {
    SqlError::internal(format!(
        "{kind:?} join cannot run as a lookup or merge join"
    ))
}

/// Joins one left row with its candidate right rows, appending to `out`
/// (inner and left joins: left ++ right; semi and anti: the left row).
pub(super) fn join_row<'r>(
    kind: JoinKind,
    l: &[Value],
    candidates: impl Iterator<Item = &'r [Value]>,
    on: Option<&Scalar>,
    ctx: &EvalCtx<'_>,
    combined: &mut Row,
    out: &mut Batch,
) -> SqlResult<()> {
    let mut matched = false;
    for r in candidates {
        if let Some(p) = on {
            combined.clear();
            combined.extend_from_slice(l);
            combined.extend_from_slice(r);
            if !eval_predicate(p, combined, ctx)? {
                continue;
            }
        }
        matched = true;
        match kind {
            JoinKind::Semi | JoinKind::Anti => break,
            _ => out.push_concat(l, r),
        }
    }
    finish_left_row(kind, matched, l, out);
    Ok(())
}

/// What a left row adds once all its candidates were seen: NULL-padded for
/// left and full joins without a match, itself for semi joins with one and
/// anti joins without.
pub(super) fn finish_left_row(kind: JoinKind, matched: bool, l: &[Value], out: &mut Batch) {
    match kind {
        JoinKind::Left | JoinKind::Full if !matched => out.push_padded_right(l),
        JoinKind::Semi if matched => out.push_row(l),
        JoinKind::Anti if !matched => out.push_row(l),
        _ => {}
    }
}

/// What a lookup join works out once: the right index's key prefix and key
/// column types, and how to decode its entries.
pub(super) struct LookupPlan {
    prefix: Vec<u8>,
    key_cols: Vec<(SqlType, Direction)>,
    decoder: rowenc::EntryDecoder,
    /// The keys bind every column of the primary key or of a unique index:
    /// each lookup is a point read of one exact KV key (which the storage
    /// engine answers from its bloom filters and one short seek), not a
    /// span scan.
    point: bool,
}

impl LookupPlan {
    pub(super) fn new(j: &LookupJoin) -> SqlResult<LookupPlan> {
        if !matches!(
            j.kind,
            JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti
        ) {
            return Err(unsupported_kind(j.kind));
        }
        let table = &j.table;
        let index = table
            .index(j.index)
            .ok_or_else(|| SqlError::internal("lookup join: index not found"))?;
        let key_cols: Vec<(SqlType, Direction)> = rowenc::full_key_columns(table, index)
            .into_iter()
            .take(j.keys.len())
            .map(|(c, d)| {
                table
                    .column_by_id(c)
                    .map(|c| (c.ty, d))
                    .ok_or_else(|| SqlError::internal("lookup join: key column not found"))
            })
            .collect::<SqlResult<_>>()?;
        if key_cols.len() != j.keys.len() {
            return Err(SqlError::internal(
                "lookup join: more keys than key columns",
            ));
        }
        let point = (index.id == table.primary_index.id || index.unique)
            && j.keys.len() == index.columns.len();
        Ok(LookupPlan {
            prefix: keys::index_prefix(table.id as u64, j.index as u64),
            key_cols,
            decoder: rowenc::EntryDecoder::with_layout(
                table,
                index,
                j.right_reads.as_deref(),
                None,
            )?,
            point,
        })
    }
}

impl Executor<'_> {
    /// Joins one batch of left rows by reading the right table by key: the
    /// batch's distinct keys become one KV batch of prefix scans of the index
    /// (followed by one batch of primary-row reads when the index does not
    /// cover the table). Output keeps the left rows' order.
    pub(super) async fn lookup_batch(
        &mut self,
        j: &LookupJoin,
        plan: &LookupPlan,
        left: &Batch,
        outer: &[Row],
        out: &mut Batch,
    ) -> SqlResult<()> {
        let table = &j.table;
        let mut key: Vec<u8> = Vec::new();
        let mut span_of: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut row_span: Vec<Option<usize>> = Vec::with_capacity(left.len());
        let mut requests = Vec::new();
        // The distinct keys of the batch, one span each.
        for l in left.rows() {
            key.clear();
            key.extend_from_slice(&plan.prefix);
            let mut null = false;
            for (lc, (ty, dir)) in j.keys.iter().zip(&plan.key_cols) {
                let v = l
                    .get(*lc)
                    .ok_or_else(|| SqlError::internal("lookup join: short row"))?;
                if v.is_null() {
                    null = true;
                    break;
                }
                rowenc::encode_key_value(&mut key, v, *ty, *dir)?;
            }
            if null {
                row_span.push(None);
                continue;
            }
            let next = span_of.len();
            let i = *span_of.entry(key.clone()).or_insert_with(|| {
                requests.push(if plan.point {
                    Request::Get { key: key.clone() }
                } else {
                    Request::Scan {
                        span: Span::new(key.clone(), keys::prefix_end(&key)),
                    }
                });
                next
            });
            row_span.push(Some(i));
        }
        // One KV batch for the whole left batch: entries decoded in place,
        // grouped by span.
        let width = table.columns.len();
        let mut fetched = Batch::new(width);
        let mut counts: Vec<usize> = Vec::with_capacity(requests.len());
        if !requests.is_empty() {
            // A point read's response has no key: keep the requested ones.
            let point_keys: Vec<Vec<u8>> = requests
                .iter()
                .filter_map(|r| match r {
                    Request::Get { key } => Some(key.clone()),
                    _ => None,
                })
                .collect();
            let responses = rowenc::send_reads(self.txn, requests).await?;
            let mut point_keys = point_keys.into_iter();
            for r in responses {
                match r {
                    Response::Scan { rows, .. } => {
                        counts.push(rows.len());
                        for kv in &rows {
                            plan.decoder.decode_into(kv, fetched.push_nulls())?;
                        }
                    }
                    Response::Get { value } => {
                        let key = point_keys.next().ok_or_else(|| {
                            SqlError::internal("lookup join: more responses than reads")
                        })?;
                        match value {
                            Some(value) => {
                                counts.push(1);
                                let kv = KeyValue { key, value };
                                plan.decoder.decode_into(&kv, fetched.push_nulls())?;
                            }
                            None => counts.push(0),
                        }
                    }
                    _ => return Err(SqlError::internal("lookup join: wrong response")),
                }
            }
        }
        // Index entries that do not cover the table: their primary rows (a
        // row deleted meanwhile in this transaction is skipped).
        let mut present: Vec<bool> = vec![true; fetched.len()];
        if !j.covering && !fetched.is_empty() {
            let pks = fetched
                .rows()
                .map(|r| rowenc::pk_values(table, r))
                .collect::<SqlResult<Vec<_>>>()?;
            let rows = rowenc::get_rows_by_pk(self.txn, table, &pks).await?;
            fetched.clear();
            for (i, r) in rows.into_iter().enumerate() {
                match r {
                    Some(r) => fetched.push_owned(r)?,
                    None => {
                        present[i] = false;
                        fetched.push_nulls();
                    }
                }
            }
        }
        // One key may match many rows: what a batch fetched is held to a
        // hash table's budget.
        super::sort::HashBudget::new(&self.node.temp_storage, "lookup join")
            .charge(fetched.bytes())?;
        // Right rows that pass the right side's filter, grouped by span.
        let mut keep = present;
        if let Some(f) = &j.right_filter {
            let ctx = self.ctx(outer, None);
            for (k, r) in keep.iter_mut().zip(fetched.rows()) {
                *k = *k && eval_predicate(f, r, &ctx)?;
            }
        }
        let mut bounds: Vec<(usize, usize)> = Vec::with_capacity(counts.len());
        let mut kept = 0;
        let mut at = 0;
        for n in counts {
            let start = kept;
            kept += keep[at..at + n].iter().filter(|k| **k).count();
            at += n;
            bounds.push((start, kept));
        }
        fetched.retain_flags(&keep);
        if let Some(p) = &j.right_project {
            fetched = fetched.select_columns(p)?;
        }
        let ctx = self.ctx(outer, None);
        let mut combined: Row = Vec::new();
        for (l, span) in left.rows().zip(&row_span) {
            let (a, b) = span.and_then(|i| bounds.get(i).copied()).unwrap_or((0, 0));
            join_row(
                j.kind,
                l,
                (a..b).map(|i| fetched.row(i)),
                j.on.as_ref(),
                &ctx,
                &mut combined,
                out,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tardigrade_sqltypes::ops::BinOp;

    use super::*;

    fn ctx() -> EvalCtx<'static> {
        EvalCtx::detached()
    }

    fn int(i: i64) -> Value {
        Value::Int(i)
    }

    /// `kind` join of left row [1] with `candidates` under `on`.
    fn run(kind: JoinKind, on: Option<&Scalar>, candidates: &[Row]) -> Vec<Row> {
        let width = match kind {
            JoinKind::Semi | JoinKind::Anti => 1,
            _ => 3,
        };
        let mut out = Batch::new(width);
        let mut combined = Vec::new();
        join_row(
            kind,
            &[int(1)],
            candidates.iter().map(|r| r.as_slice()),
            on,
            &ctx(),
            &mut combined,
            &mut out,
        )
        .expect("join_row");
        out.into_rows()
    }

    #[test]
    fn every_kind_with_and_without_a_residual_condition() {
        let rights = vec![vec![int(1), int(10)], vec![int(1), int(20)]];
        // @3 > 15 over (left ++ right).
        let on = Scalar::Binary {
            op: BinOp::Gt,
            left: Box::new(Scalar::Column {
                index: 2,
                ty: SqlType::Int8,
            }),
            right: Box::new(Scalar::literal(int(15), SqlType::Int8)),
            ty: SqlType::Bool,
        };
        let both = vec![vec![int(1), int(1), int(10)], vec![int(1), int(1), int(20)]];
        assert_eq!(run(JoinKind::Inner, None, &rights), both);
        assert_eq!(run(JoinKind::Inner, Some(&on), &rights), both[1..].to_vec());
        assert_eq!(run(JoinKind::Left, Some(&on), &rights), both[1..].to_vec());
        assert_eq!(
            run(JoinKind::Left, None, &[]),
            vec![vec![int(1), Value::Null, Value::Null]]
        );
        assert_eq!(run(JoinKind::Semi, None, &rights), vec![vec![int(1)]]);
        assert_eq!(
            run(JoinKind::Semi, Some(&on), &rights[..1]),
            Vec::<Row>::new()
        );
        assert_eq!(run(JoinKind::Anti, None, &rights), Vec::<Row>::new());
        assert_eq!(
            run(JoinKind::Anti, Some(&on), &rights[..1]),
            vec![vec![int(1)]]
        );
    }
}
