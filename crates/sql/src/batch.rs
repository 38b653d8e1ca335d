//! Batches of rows: what operators pass to each other.
//!
//! Takes nothing from the rest of the crate (it sits at the bottom of the
//! layering, under [`crate::rowenc`], which decodes scans into batches);
//! gives [`Row`], [`Batch`] and the memory estimate [`row_bytes`] that the
//! executor's budgets charge.
//!
//! A [`Batch`] holds up to a few thousand rows of one width in a single
//! row-major vector of values, so a batch costs one allocation however many
//! rows it holds, rows are handed around as `&[Value]` slices, and filtering
//! compacts the vector in place (values move, nothing is cloned). Operators
//! keep their batches' vectors between calls where they can, so steady-state
//! execution allocates per batch, not per row (values that own heap memory,
//! such as text, still own it).

use tardigrade_sqltypes::{SqlError, SqlResult, Value};

/// A row of values, in the column order of the operator that produced it.
pub type Row = Vec<Value>;

/// Rows an operator puts in one batch (at most, give or take the rows one
/// input row expands to).
pub const BATCH_ROWS: usize = 1024;

/// Rows of `width` values each, stored one after the other.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    width: usize,
    /// Kept separately: rows of width 0 (`SELECT count(*)`'s input) still count.
    len: usize,
    values: Vec<Value>,
}

impl Batch {
    pub fn new(width: usize) -> Batch {
        Batch {
            width,
            len: 0,
            values: Vec::new(),
        }
    }

    pub fn with_capacity(width: usize, rows: usize) -> Batch {
        Batch {
            width,
            len: 0,
            values: Vec::with_capacity(width * rows),
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn row(&self, i: usize) -> &[Value] {
        &self.values[i * self.width..(i + 1) * self.width]
    }

    pub fn row_mut(&mut self, i: usize) -> &mut [Value] {
        &mut self.values[i * self.width..(i + 1) * self.width]
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[Value]> + '_ {
        (0..self.len).map(move |i| self.row(i))
    }

    /// The batch with only the columns `cols` (positions, in this order),
    /// moving their values.
    pub fn select_columns(mut self, cols: &[usize]) -> SqlResult<Batch> {
        if cols.iter().any(|&c| c >= self.width) {
            return Err(SqlError::internal("column selection outside the batch"));
        }
        let mut out = Batch::with_capacity(cols.len(), self.len);
        for i in 0..self.len {
            let row = &mut self.values[i * self.width..(i + 1) * self.width];
            out.values.extend(
                cols.iter()
                    .map(|&c| std::mem::replace(&mut row[c], Value::Null)),
            );
        }
        out.len = self.len;
        Ok(out)
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.values.clear();
        self.len = 0;
    }

    /// Appends a copy of `row`.
    pub fn push_row(&mut self, row: &[Value]) {
        debug_assert_eq!(row.len(), self.width, "row width");
        self.values.extend_from_slice(row);
        self.len += 1;
    }

    /// Appends `row`, moving its values; a row of the wrong width is an
    /// internal error rather than a misaligned batch.
    pub fn push_owned(&mut self, row: Row) -> SqlResult<()> {
        if row.len() != self.width {
            return Err(SqlError::internal(format!(
                "row of {} columns in a batch of {}",
                row.len(),
                self.width
            )));
        }
        self.values.extend(row);
        self.len += 1;
        Ok(())
    }

    /// Appends the row `left ++ right`.
    pub fn push_concat(&mut self, left: &[Value], right: &[Value]) {
        debug_assert_eq!(left.len() + right.len(), self.width, "row width");
        self.values.extend_from_slice(left);
        self.values.extend_from_slice(right);
        self.len += 1;
    }

    /// Appends `left` followed by NULLs up to the batch's width.
    pub fn push_padded_right(&mut self, left: &[Value]) {
        debug_assert!(left.len() <= self.width, "row width");
        self.values.extend_from_slice(left);
        self.values
            .extend(std::iter::repeat_n(Value::Null, self.width - left.len()));
        self.len += 1;
    }

    /// Appends NULLs followed by `right`, up to the batch's width.
    pub fn push_padded_left(&mut self, right: &[Value]) {
        debug_assert!(right.len() <= self.width, "row width");
        self.values
            .extend(std::iter::repeat_n(Value::Null, self.width - right.len()));
        self.values.extend_from_slice(right);
        self.len += 1;
    }

    /// Appends a row from values produced one by one: call `push_value`
    /// `width` times, then `finish_row`.
    pub fn push_value(&mut self, v: Value) {
        self.values.push(v);
    }

    pub fn finish_row(&mut self) {
        debug_assert_eq!(self.values.len(), (self.len + 1) * self.width, "row width");
        self.len += 1;
    }

    /// Appends a row of NULLs and returns it for filling in.
    pub fn push_nulls(&mut self) -> &mut [Value] {
        let start = self.values.len();
        self.values
            .extend(std::iter::repeat_n(Value::Null, self.width));
        self.len += 1;
        &mut self.values[start..]
    }

    /// Keeps the rows whose flag is set (as many flags as rows), moving the
    /// kept values down in place.
    pub fn retain_flags(&mut self, keep: &[bool]) {
        debug_assert_eq!(keep.len(), self.len);
        let w = self.width;
        let mut kept = 0;
        for (i, k) in keep.iter().enumerate() {
            if !*k {
                continue;
            }
            if kept != i && w > 0 {
                let (head, tail) = self.values.split_at_mut(i * w);
                head[kept * w..(kept + 1) * w].swap_with_slice(&mut tail[..w]);
            }
            kept += 1;
        }
        self.values.truncate(kept * w);
        self.len = kept;
    }

    /// Drops the first `n` rows.
    pub fn skip(&mut self, n: usize) {
        let n = n.min(self.len);
        self.values.drain(..n * self.width);
        self.len -= n;
    }

    /// Keeps only the first `n` rows.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len {
            self.values.truncate(n * self.width);
            self.len = n;
        }
    }

    /// Moves the rows of `other` (same width) to the end of this batch.
    pub fn append(&mut self, other: &mut Batch) {
        debug_assert_eq!(self.width, other.width, "batch width");
        self.values.append(&mut other.values);
        self.len += other.len;
        other.len = 0;
    }

    /// Approximate heap bytes held, for memory budgets.
    pub fn bytes(&self) -> usize {
        row_bytes(&self.values)
    }

    /// The rows as separate vectors (for the few consumers that keep rows
    /// one by one: DML, subquery results, the client's result set).
    pub fn into_rows(self) -> Vec<Row> {
        let mut out = Vec::with_capacity(self.len);
        if self.width == 0 {
            out.resize_with(self.len, Vec::new);
            return out;
        }
        let mut values = self.values.into_iter();
        for _ in 0..self.len {
            out.push(values.by_ref().take(self.width).collect());
        }
        out
    }

    /// Takes the values out (leaving NULLs) of row `i`, for consumers that
    /// keep single rows.
    pub fn take_row(&mut self, i: usize) -> Row {
        let w = self.width;
        self.values[i * w..(i + 1) * w]
            .iter_mut()
            .map(|v| std::mem::replace(v, Value::Null))
            .collect()
    }
}

/// Approximate heap footprint of a row, without allocating: the row's vector
/// and, per value, its out-of-line data.
pub fn row_bytes(row: &[Value]) -> usize {
    std::mem::size_of::<Row>() + row.iter().map(value_bytes).sum::<usize>()
}

fn value_bytes(v: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match v {
            Value::Text(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Decimal(_) => 16,
            // A guess: the tree's nodes are not walked per row.
            Value::Jsonb(_) => 64,
            Value::Array(items) => items.iter().map(value_bytes).sum(),
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> Value {
        Value::Int(i)
    }

    fn batch(rows: &[&[i64]]) -> Batch {
        let mut b = Batch::new(rows.first().map_or(0, |r| r.len()));
        for r in rows {
            b.push_owned(r.iter().map(|i| int(*i)).collect())
                .expect("same width");
        }
        b
    }

    #[test]
    fn rows_are_slices_of_one_vector() {
        let b = batch(&[&[1, 2], &[3, 4], &[5, 6]]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.row(1), &[int(3), int(4)]);
        let all: Vec<&[Value]> = b.rows().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2], &[int(5), int(6)]);
    }

    #[test]
    fn retain_moves_kept_rows_down_in_order() {
        let mut b = batch(&[&[1, 10], &[2, 20], &[3, 30], &[4, 40]]);
        b.retain_flags(&[false, true, false, true]);
        assert_eq!(b, batch(&[&[2, 20], &[4, 40]]));
        b.retain_flags(&[false, false]);
        assert!(b.is_empty());
    }

    #[test]
    fn zero_width_rows_are_counted() {
        let mut b = Batch::new(0);
        b.push_row(&[]);
        b.push_row(&[]);
        b.push_row(&[]);
        b.retain_flags(&[true, false, true]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.rows().count(), 2);
        b.skip(1);
        assert_eq!(b.into_rows(), vec![Vec::<Value>::new()]);
    }

    #[test]
    fn a_row_of_the_wrong_width_is_refused() {
        let mut b = Batch::new(2);
        assert!(b.push_owned(vec![int(1)]).is_err());
        assert!(b.is_empty());
    }

    #[test]
    fn skip_truncate_padding_and_conversion() {
        let mut b = batch(&[&[1], &[2], &[3], &[4]]);
        b.skip(1);
        b.truncate(2);
        assert_eq!(b.into_rows(), vec![vec![int(2)], vec![int(3)]]);
        let mut j = Batch::new(3);
        j.push_padded_right(&[int(1)]);
        j.push_padded_left(&[int(2), int(3)]);
        j.push_concat(&[int(4)], &[int(5), int(6)]);
        assert_eq!(
            j.into_rows(),
            vec![
                vec![int(1), Value::Null, Value::Null],
                vec![Value::Null, int(2), int(3)],
                vec![int(4), int(5), int(6)],
            ]
        );
    }
}
