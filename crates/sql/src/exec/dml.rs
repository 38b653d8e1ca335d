//! Running a bound INSERT, UPDATE or DELETE ([`BoundDml`], bound by
//! [`crate::plan::dml`]).
//!
//! Takes the bound statement and the statement's [`Executor`]; computes full
//! table rows (defaults filled, values assigned to the column types, checks
//! evaluated) and hands them to [`crate::rowenc`], which writes the primary
//! and secondary index entries in one KV batch and enforces NOT NULL,
//! uniqueness and foreign keys; gives the statement's [`QueryOutput`].

use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value, ops};

use super::Executor;
use super::eval::{eval, eval_predicate};
use crate::node::QueryOutput;
use crate::plan::dml::{BoundDml, DmlKind, OnConflict};
use crate::plan::{Rel, Row, Scalar};
use crate::rowenc;

/// Converts a value to a column's type as an assignment does: numeric
/// conversions with range checks, strings checked against the length limit.
pub fn assign(v: Value, from: SqlType, col_ty: SqlType, col_name: &str) -> SqlResult<Value> {
    if v.is_null() {
        return Ok(v);
    }
    // An array is assigned element by element (a too long VARCHAR(n) element is
    // an error, not truncated as by an explicit cast).
    let v = match (v, col_ty.element()) {
        (Value::Array(items), Some(elem)) => {
            let from_elem = from.element().unwrap_or(SqlType::Unknown);
            return items
                .into_iter()
                .map(|x| assign(x, from_elem, elem, col_name))
                .collect::<SqlResult<Vec<_>>>()
                .map(Value::Array);
        }
        (v, _) => v,
    };
    if let (Value::Text(s), SqlType::Varchar(Some(n)) | SqlType::Char(n)) = (&v, col_ty) {
        let trimmed_len = s.trim_end_matches(' ').chars().count();
        if trimmed_len > n as usize {
            let tname = if matches!(col_ty, SqlType::Char(_)) {
                "character"
            } else {
                "character varying"
            };
            return Err(SqlError::new(
                codes::STRING_DATA_RIGHT_TRUNCATION,
                format!("value too long for type {tname}({n})"),
            )
            .with_detail(format!("column \"{col_name}\"")));
        }
        // cut the excess spaces (VARCHAR) or pad (CHAR)
        return tardigrade_sqltypes::value::coerce_string(s, col_ty).map(Value::Text);
    }
    if from == col_ty
        && !matches!(
            col_ty,
            SqlType::Decimal(Some(_)) | SqlType::Int2 | SqlType::Int4
        )
    {
        return Ok(v);
    }
    ops::cast(
        &v,
        if from == SqlType::Unknown {
            SqlType::Text
        } else {
            from
        },
        col_ty,
    )
}

impl BoundDml {
    /// Computes the row's stored generated columns from its other values.
    fn fill_generated(&self, row: &mut Row, exec: &Executor<'_>) -> SqlResult<()> {
        if self.generated.is_empty() {
            return Ok(());
        }
        let ctx = exec.ctx(&[], None);
        for (pos, e) in &self.generated {
            let col = &self.table.columns[*pos];
            let v = eval(e, row, &ctx)?;
            row[*pos] = assign(v, e.ty(), col.ty, &col.name)?;
        }
        Ok(())
    }

    fn check_row(&self, row: &Row, exec: &Executor<'_>) -> SqlResult<()> {
        let ctx = exec.ctx(&[], None);
        for (name, check) in &self.checks {
            if matches!(eval(check, row, &ctx)?, Value::Bool(false)) {
                return Err(SqlError::new(
                    codes::CHECK_VIOLATION,
                    format!(
                        "new row for relation \"{}\" violates check constraint \"{name}\"",
                        self.table.name
                    ),
                ));
            }
        }
        Ok(())
    }

    pub async fn execute(&self, exec: &mut Executor<'_>) -> SqlResult<QueryOutput> {
        // UPDATE and DELETE rows carry the FROM / USING items' columns after
        // the table's, for RETURNING.
        let width = self.table.columns.len();
        let (affected, rows) = match &self.kind {
            DmlKind::Insert { .. } => self.execute_insert(exec).await?,
            DmlKind::Update { source, sets } => {
                let joined_rows = self.target_rows(exec, source).await?;
                let exprs: Vec<&Scalar> = sets.iter().map(|(_, s)| s).collect();
                let needs_async = exprs.iter().any(|e| e.needs_async());
                let mut pairs = Vec::with_capacity(joined_rows.len());
                let mut extras = Vec::with_capacity(joined_rows.len());
                for joined in joined_rows {
                    let values = if needs_async {
                        Some(exec.eval_row(&exprs, &joined, &[]).await?)
                    } else {
                        None
                    };
                    let ctx = exec.ctx(&[], values.as_ref());
                    let mut new: Row = joined[..width].to_vec();
                    for (pos, s) in sets {
                        let col = &self.table.columns[*pos];
                        new[*pos] = assign(eval(s, &joined, &ctx)?, s.ty(), col.ty, &col.name)?;
                    }
                    self.fill_generated(&mut new, exec)?;
                    self.check_row(&new, exec)?;
                    let mut joined = joined;
                    let extra = joined.split_off(width);
                    pairs.push((joined, new));
                    extras.push(extra);
                }
                rowenc::update_rows(exec.txn, &exec.node.catalog, &self.table, &pairs).await?;
                exec.forget_scans();
                let rows = pairs
                    .into_iter()
                    .zip(extras)
                    .map(|((_, mut n), extra)| {
                        n.extend(extra);
                        n
                    })
                    .collect::<Vec<Row>>();
                (rows.len(), rows)
            }
            DmlKind::Delete { source } => {
                let rows = self.target_rows(exec, source).await?;
                let targets: Vec<Row> = rows.iter().map(|r| r[..width].to_vec()).collect();
                rowenc::delete_rows(exec.txn, &exec.node.catalog, &self.table, &targets).await?;
                exec.forget_scans();
                (rows.len(), rows)
            }
        };
        exec.node
            .stats
            .note_changes(&exec.node.db, &self.table, affected as u64);
        let verb = match &self.kind {
            DmlKind::Insert { .. } => "INSERT 0",
            DmlKind::Update { .. } => "UPDATE",
            DmlKind::Delete { .. } => "DELETE",
        };
        match &self.returning {
            None => Ok(QueryOutput::command(format!("{verb} {affected}"))),
            Some((exprs, scope)) => {
                let ctx = exec.ctx(&[], None);
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(
                        exprs
                            .iter()
                            .map(|e| eval(e, row, &ctx))
                            .collect::<SqlResult<Row>>()?,
                    );
                }
                Ok(super::rows_output(scope, out, |_| {
                    format!("{verb} {affected}")
                }))
            }
        }
    }

    /// The rows an UPDATE or DELETE changes, read locking, each table row
    /// once: with `FROM` / `USING` a row may join several rows of the other
    /// items, and (as in PostgreSQL) only the first joined row counts.
    async fn target_rows(&self, exec: &mut Executor<'_>, source: &Rel) -> SqlResult<Vec<Row>> {
        let rows = exec.run_locking(source).await?;
        let width = self.table.columns.len();
        if rows.first().is_none_or(|r| r.len() <= width) {
            return Ok(rows);
        }
        let pk: Vec<usize> = self
            .table
            .primary_index
            .columns
            .iter()
            .filter_map(|id| self.table.columns.iter().position(|c| c.id == *id))
            .collect();
        let mut seen = std::collections::HashSet::new();
        Ok(rows
            .into_iter()
            .filter(|r| seen.insert(pk.iter().map(|p| r[*p].clone()).collect::<Vec<Value>>()))
            .collect())
    }

    async fn execute_insert(&self, exec: &mut Executor<'_>) -> SqlResult<(usize, Vec<Row>)> {
        let DmlKind::Insert {
            source,
            source_types,
            targets,
            defaults,
            upsert,
            on_conflict,
        } = &self.kind
        else {
            return Err(SqlError::internal("not an insert"));
        };
        // VALUES rows are evaluated here so that DEFAULT entries stay "not given".
        let source_rows: Vec<Vec<Option<Value>>> = match source {
            Rel::Values {
                rows: value_rows, ..
            } => {
                let mut out = Vec::with_capacity(value_rows.len());
                for r in value_rows {
                    let exprs: Vec<&Scalar> = r.iter().collect();
                    let values = if exprs.iter().any(|e| e.needs_async()) {
                        Some(exec.eval_row(&exprs, &[], &[]).await?)
                    } else {
                        None
                    };
                    let ctx = exec.ctx(&[], values.as_ref());
                    let mut row = Vec::with_capacity(r.len());
                    for e in r {
                        if matches!(e, Scalar::Func { name, .. } if name == "default") {
                            row.push(None);
                        } else {
                            row.push(Some(eval(e, &[], &ctx)?));
                        }
                    }
                    out.push(row);
                }
                out
            }
            other => exec
                .run(other, &[])
                .await?
                .into_iter()
                .map(|r| r.into_iter().map(Some).collect())
                .collect(),
        };
        let default_exprs: Vec<&Scalar> = defaults.iter().flatten().collect();
        let defaults_async = default_exprs.iter().any(|e| e.needs_async());
        let mut rows = Vec::with_capacity(source_rows.len());
        for src in source_rows {
            let mut given = vec![false; self.table.columns.len()];
            for (i, v) in src.iter().enumerate() {
                let Some(&pos) = targets.get(i) else { break };
                given[pos] |= v.is_some();
            }
            // Only the defaults this row uses: a nextval() is not spent on a
            // column the row gives.
            let values = if defaults_async {
                let needed: Vec<&Scalar> = defaults
                    .iter()
                    .enumerate()
                    .filter(|(pos, _)| !given[*pos])
                    .filter_map(|(_, d)| d.as_ref())
                    .collect();
                Some(exec.eval_row(&needed, &[], &[]).await?)
            } else {
                None
            };
            let ctx = exec.ctx(&[], values.as_ref());
            let mut row: Row = vec![Value::Null; self.table.columns.len()];
            for (i, v) in src.into_iter().enumerate() {
                let Some(&pos) = targets.get(i) else { break };
                let Some(v) = v else { continue };
                let col = &self.table.columns[pos];
                row[pos] = assign(
                    v,
                    source_types.get(i).copied().unwrap_or(SqlType::Unknown),
                    col.ty,
                    &col.name,
                )?;
            }
            for (pos, d) in defaults.iter().enumerate() {
                if !given[pos]
                    && let Some(d) = d
                {
                    row[pos] = eval(d, &[], &ctx)?;
                }
            }
            self.fill_generated(&mut row, exec)?;
            self.check_row(&row, exec)?;
            rows.push(row);
        }
        match on_conflict {
            None => {
                rowenc::insert_rows(exec.txn, &exec.node.catalog, &self.table, &rows, *upsert)
                    .await?;
                exec.forget_scans();
                Ok((rows.len(), rows))
            }
            Some(oc) => self.insert_on_conflict(exec, rows, oc).await,
        }
    }

    /// INSERT … ON CONFLICT: rows whose arbiter key exists are skipped or turned
    /// into updates of the existing row.
    async fn insert_on_conflict(
        &self,
        exec: &mut Executor<'_>,
        rows: Vec<Row>,
        oc: &OnConflict,
    ) -> SqlResult<(usize, Vec<Row>)> {
        let table = &self.table;
        // (columns, the partial index when it is one): without a target,
        // every unique index arbitrates, partial ones included (PostgreSQL).
        let arbiters: Vec<(Vec<usize>, Option<crate::catalog::IndexId>)> = if oc.arbiter.is_empty()
        {
            std::iter::once(&table.primary_index)
                .chain(table.indexes.iter().filter(|i| i.unique))
                .map(|i| {
                    let cols = i
                        .columns
                        .iter()
                        .filter_map(|id| table.columns.iter().position(|c| c.id == *id))
                        .collect();
                    (cols, i.predicate.map(|_| i.id))
                })
                .collect()
        } else {
            vec![(oc.arbiter.clone(), oc.arbiter_index)]
        };
        let mut affected = 0;
        let mut out = Vec::new();
        // The primary keys of the rows this statement inserted or updated:
        // DO UPDATE must not reach one of them again (PostgreSQL checks
        // before the WHERE clause).
        let mut touched: std::collections::HashSet<Vec<Value>> = std::collections::HashSet::new();
        for row in rows {
            let mut existing: Option<Row> = None;
            for (cols, partial) in &arbiters {
                if let Some(found) = self.find_by_columns(exec, cols, *partial, &row).await? {
                    existing = Some(found);
                    break;
                }
            }
            if let (Some(old), Some(_)) = (&existing, &oc.update)
                && touched.contains(&rowenc::pk_values(table, old)?)
            {
                return Err(SqlError::new(
                    codes::CARDINALITY_VIOLATION,
                    "ON CONFLICT DO UPDATE command cannot affect row a second time",
                )
                .with_hint(
                    "Ensure that no rows proposed for insertion within the same command \
                     have duplicate constrained values.",
                ));
            }
            match (existing, &oc.update) {
                (None, _) => {
                    rowenc::insert_rows(
                        exec.txn,
                        &exec.node.catalog,
                        table,
                        std::slice::from_ref(&row),
                        false,
                    )
                    .await?;
                    exec.forget_scans();
                    touched.insert(rowenc::pk_values(table, &row)?);
                    affected += 1;
                    out.push(row);
                }
                (Some(_), None) => {}
                (Some(old), Some((sets, selection))) => {
                    let mut both = old.clone();
                    both.extend(row.iter().cloned());
                    let ctx = exec.ctx(&[], None);
                    if let Some(sel) = selection
                        && !eval_predicate(sel, &both, &ctx)?
                    {
                        continue;
                    }
                    let mut new = old.clone();
                    for (pos, s) in sets {
                        let col = &table.columns[*pos];
                        new[*pos] = assign(eval(s, &both, &ctx)?, s.ty(), col.ty, &col.name)?;
                    }
                    self.fill_generated(&mut new, exec)?;
                    self.check_row(&new, exec)?;
                    rowenc::update_rows(exec.txn, &exec.node.catalog, table, &[(old, new.clone())])
                        .await?;
                    exec.forget_scans();
                    touched.insert(rowenc::pk_values(table, &new)?);
                    affected += 1;
                    out.push(new);
                }
            }
        }
        Ok((affected, out))
    }

    /// The existing row whose `cols` equal the row's, through the unique
    /// index on exactly those columns, or the partial one `partial` (which
    /// can only conflict with a row it would hold).
    async fn find_by_columns(
        &self,
        exec: &mut Executor<'_>,
        cols: &[usize],
        partial: Option<crate::catalog::IndexId>,
        row: &Row,
    ) -> SqlResult<Option<Row>> {
        let table = &self.table;
        let values: Vec<Value> = cols.iter().map(|p| row[*p].clone()).collect();
        if values.iter().any(|v| v.is_null()) {
            return Ok(None);
        }
        let ids: Vec<u32> = cols.iter().map(|p| table.columns[*p].id).collect();
        let index = match partial {
            Some(id) => table.index(id).filter(|i| i.holds_row(table, row)),
            None => std::iter::once(&table.primary_index)
                .chain(table.indexes.iter().filter(|i| !i.is_partial()))
                .find(|i| {
                    i.columns.len() == ids.len() && ids.iter().all(|id| i.columns.contains(id))
                }),
        };
        if partial.is_some() && index.is_none() {
            // The row is outside the partial index: nothing to conflict with.
            return Ok(None);
        }
        let Some(index) = index else {
            return Err(SqlError::new(
                "42P10",
                "there is no unique or exclusion constraint matching the ON CONFLICT specification",
            ));
        };
        let ordered: Vec<Value> = index
            .columns
            .iter()
            .filter_map(|id| table.columns.iter().position(|c| c.id == *id))
            .map(|p| row[p].clone())
            .collect();
        let prefix = rowenc::index_key_prefix(table, index.id, &ordered)?;
        let end = tardigrade_encoding::keys::prefix_end(&prefix);
        let mut scanner =
            rowenc::RowScanner::new(table.clone(), index.id, vec![(prefix, end)], false);
        let found = scanner
            .next_batch(exec.txn, 1)
            .await?
            .and_then(|b| b.into_iter().next());
        match found {
            None => Ok(None),
            Some(r) if index.id == table.primary_index.id => Ok(Some(r)),
            Some(r) => {
                let pk: Vec<Value> = table
                    .primary_index
                    .columns
                    .iter()
                    .filter_map(|id| table.columns.iter().position(|c| c.id == *id))
                    .map(|p| r[p].clone())
                    .collect();
                Ok(rowenc::get_rows_by_pk(exec.txn, table, &[pk])
                    .await?
                    .into_iter()
                    .next()
                    .flatten())
            }
        }
    }
}
