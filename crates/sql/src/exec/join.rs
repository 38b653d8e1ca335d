//! Lookup and merge joins (hash and nested-loop joins are in the parent module).
//!
//! Both handle inner, left, semi and anti joins and keep the left input's
//! order: a left row's matches are emitted before the next left row's. NULL
//! keys never match.

use std::cmp::Ordering;
use std::collections::HashMap;

use tardigrade_encoding::{Direction, keys};
use tardigrade_kvpb::{Request, Response, Span};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use super::Executor;
use super::eval::{EvalCtx, eval_predicate};
use crate::catalog::kv_err;
use crate::plan::{JoinKind, LookupJoin, MergeKey, Row, Scalar};
use crate::rowenc;

/// Left rows whose lookups go to KV as one batch of spans.
const LOOKUP_BATCH: usize = 1000;

fn unsupported_kind(kind: JoinKind) -> SqlError {
    SqlError::internal(format!(
        "{kind:?} join cannot run as a lookup or merge join"
    ))
}

/// Joins one left row with its candidate right rows, appending to `out`.
#[allow(clippy::too_many_arguments)]
fn join_row(
    kind: JoinKind,
    l: Row,
    candidates: &[Row],
    right_width: usize,
    on: Option<&Scalar>,
    ctx: &EvalCtx<'_>,
    combined: &mut Row,
    out: &mut Vec<Row>,
) -> SqlResult<()> {
    let mut matched = false;
    for r in candidates {
        if let Some(p) = on {
            combined.clear();
            combined.extend_from_slice(&l);
            combined.extend_from_slice(r);
            if !eval_predicate(p, combined, ctx)? {
                continue;
            }
        }
        matched = true;
        match kind {
            JoinKind::Semi | JoinKind::Anti => break,
            _ => {
                let mut row = Vec::with_capacity(l.len() + r.len());
                row.extend_from_slice(&l);
                row.extend_from_slice(r);
                out.push(row);
            }
        }
    }
    match kind {
        JoinKind::Left if !matched => {
            let mut l = l;
            l.extend(std::iter::repeat_n(Value::Null, right_width));
            out.push(l);
        }
        JoinKind::Semi if matched => out.push(l),
        JoinKind::Anti if !matched => out.push(l),
        _ => {}
    }
    Ok(())
}

impl Executor<'_> {
    /// Reads the right table by key for each batch of left rows: the distinct
    /// keys of a batch become one KV batch of prefix scans of the index
    /// (followed by one batch of primary-row reads when the index does not
    /// cover the table).
    pub(super) async fn lookup_join(
        &mut self,
        j: &LookupJoin,
        left: Vec<Row>,
        outer: &[Row],
    ) -> SqlResult<Vec<Row>> {
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
        let prefix = keys::index_prefix(table.id as u64, j.index as u64);
        let right_width = table.columns.len();
        let mut out: Vec<Row> = Vec::new();
        let mut key: Vec<u8> = Vec::new();
        let mut span_of: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut row_span: Vec<Option<usize>> = Vec::with_capacity(LOOKUP_BATCH);
        let mut counts: Vec<usize> = Vec::new();
        let mut fetched: Vec<Option<Row>> = Vec::new();
        let mut rights: Vec<Row> = Vec::new();
        let mut bounds: Vec<(usize, usize)> = Vec::new();
        let mut combined: Row = Vec::new();
        let mut rows = left.into_iter();
        loop {
            let chunk: Vec<Row> = rows.by_ref().take(LOOKUP_BATCH).collect();
            if chunk.is_empty() {
                break;
            }
            // The distinct keys of the batch, one span each.
            span_of.clear();
            row_span.clear();
            let mut requests = Vec::new();
            for l in &chunk {
                key.clear();
                key.extend_from_slice(&prefix);
                let mut null = false;
                for (lc, (ty, dir)) in j.keys.iter().zip(&key_cols) {
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
                    requests.push(Request::Scan {
                        span: Span::new(key.clone(), keys::prefix_end(&key)),
                    });
                    next
                });
                row_span.push(Some(i));
            }
            // One KV batch for the whole chunk.
            counts.clear();
            fetched.clear();
            if !requests.is_empty() {
                let responses = self.txn.send(requests).await.map_err(kv_err)?;
                for r in responses {
                    let Response::Scan { rows, .. } = r else {
                        return Err(SqlError::internal("lookup join: wrong response"));
                    };
                    counts.push(rows.len());
                    for kv in &rows {
                        fetched.push(Some(rowenc::decode_index_entry(table, index, kv)?));
                    }
                }
            }
            if !j.covering && !fetched.is_empty() {
                let pks = fetched
                    .iter()
                    .flatten()
                    .map(|r| rowenc::pk_values(table, r))
                    .collect::<SqlResult<Vec<_>>>()?;
                fetched = rowenc::get_rows_by_pk(self.txn, table, &pks).await?;
            }
            // Right rows that pass the right side's filter, grouped by span.
            rights.clear();
            bounds.clear();
            {
                let ctx = self.ctx(outer, None);
                let mut fetched = fetched.drain(..);
                for &n in &counts {
                    let start = rights.len();
                    for r in fetched.by_ref().take(n).flatten() {
                        let keep = match &j.right_filter {
                            Some(f) => eval_predicate(f, &r, &ctx)?,
                            None => true,
                        };
                        if keep {
                            rights.push(r);
                        }
                    }
                    bounds.push((start, rights.len()));
                }
            }
            self.account(&rights)?;
            let before = out.len();
            {
                let ctx = self.ctx(outer, None);
                for (l, span) in chunk.into_iter().zip(&row_span) {
                    let candidates: &[Row] = match span {
                        Some(i) => bounds
                            .get(*i)
                            .and_then(|(a, b)| rights.get(*a..*b))
                            .unwrap_or(&[]),
                        None => &[],
                    };
                    join_row(
                        j.kind,
                        l,
                        candidates,
                        right_width,
                        j.on.as_ref(),
                        &ctx,
                        &mut combined,
                        &mut out,
                    )?;
                }
            }
            self.account(&out[before..])?;
        }
        Ok(out)
    }

    /// Joins two inputs ordered on `keys` (same directions) by advancing
    /// through both: each left row meets the run of right rows with its key,
    /// which is kept for the following left rows with the same key.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn merge_join(
        &mut self,
        kind: JoinKind,
        left: Vec<Row>,
        right: Vec<Row>,
        right_width: usize,
        keys: &[MergeKey],
        on: Option<&Scalar>,
        outer: &[Row],
    ) -> SqlResult<Vec<Row>> {
        if !matches!(
            kind,
            JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti
        ) {
            return Err(unsupported_kind(kind));
        }
        fn value(row: &Row, i: usize) -> &Value {
            row.get(i).unwrap_or(&Value::Null)
        }
        let null_key = |row: &Row, left_side: bool| {
            keys.iter()
                .any(|k| value(row, if left_side { k.left } else { k.right }).is_null())
        };
        let cmp = |l: &Row, r: &Row| -> Ordering {
            for k in keys {
                let o = value(l, k.left).cmp(value(r, k.right));
                let o = if k.descending { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        };
        let mut out: Vec<Row> = Vec::new();
        let mut accounted = 0;
        let mut combined: Row = Vec::new();
        // Right rows [group.0, group.1) have the previous left row's key; no
        // right row before `next` can match a later left row.
        let mut group = (0usize, 0usize);
        let mut next = 0usize;
        for l in left {
            self.tick(1).await;
            if out.len() - accounted >= 1024 {
                self.account(&out[accounted..])?;
                accounted = out.len();
            }
            let ctx = self.ctx(outer, None);
            if null_key(&l, true) {
                join_row(kind, l, &[], right_width, on, &ctx, &mut combined, &mut out)?;
                continue;
            }
            let same = group.0 < group.1 && cmp(&l, &right[group.0]) == Ordering::Equal;
            if !same {
                next = next.max(group.1);
                while next < right.len()
                    && (null_key(&right[next], false) || cmp(&l, &right[next]) == Ordering::Greater)
                {
                    next += 1;
                }
                let mut end = next;
                while end < right.len()
                    && !null_key(&right[end], false)
                    && cmp(&l, &right[end]) == Ordering::Equal
                {
                    end += 1;
                }
                group = (next, end);
            }
            join_row(
                kind,
                l,
                &right[group.0..group.1],
                right_width,
                on,
                &ctx,
                &mut combined,
                &mut out,
            )?;
        }
        self.account(&out[accounted..])?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use tardigrade_sqltypes::ops::BinOp;

    use super::*;

    fn ctx() -> EvalCtx<'static> {
        EvalCtx {
            params: &[],
            outer: &[],
            subqueries: None,
            row_values: None,
            now_micros: 0,
            node_id: 1,
            database: "",
            user: "root",
        }
    }

    fn int(i: i64) -> Value {
        Value::Int(i)
    }

    /// `kind` join of left row [1] with right rows [1, 10], [1, 20] under `on`.
    fn run(kind: JoinKind, on: Option<&Scalar>, candidates: &[Row]) -> Vec<Row> {
        let mut out = Vec::new();
        let mut combined = Vec::new();
        join_row(
            kind,
            vec![int(1)],
            candidates,
            2,
            on,
            &ctx(),
            &mut combined,
            &mut out,
        )
        .expect("join_row");
        out
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
