//! Collecting table statistics: one pass over the primary index counting rows
//! and NULLs exactly, estimating distinct counts with a HyperLogLog sketch per
//! column, and keeping a reservoir sample of rows from which each column's
//! equi-depth histogram is built (JSONB and arrays excepted) (CockroachDB samples 10,000 rows and
//! builds up to 200 buckets; so do we). Memory stays bounded whatever the
//! table's size: the sketches and the sample are fixed-size.
//!
//! The pass reads in pages through one read-only transaction. The result is
//! written to the table's statistics key ([`super::stats_key`]), replacing the
//! collected columns' entries.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tardigrade_kv::Db;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use super::{Bucket, ColumnStats, TableStats, encode, read, stats_key};
use crate::catalog::{ColumnId, TableDesc, kv_err};
use crate::rowenc::{self, full_scan};

/// Rows kept in the sample histograms are built from.
pub const SAMPLE_ROWS: usize = 10_000;
/// Most buckets of a histogram.
pub const MAX_BUCKETS: usize = 200;
/// log2 of the HyperLogLog registers per column (4096 registers: about 1.6%
/// standard error).
const HLL_BITS: u32 = 12;
/// Rows read per page.
const PAGE_ROWS: usize = 1000;

/// The name automatic statistics carry (as in CockroachDB).
pub const AUTO_STATS_NAME: &str = "__auto__";

/// A HyperLogLog distinct-count sketch.
struct Sketch {
    registers: Vec<u8>,
}

impl Sketch {
    fn new() -> Sketch {
        Sketch {
            registers: vec![0; 1 << HLL_BITS],
        }
    }

    fn add(&mut self, hash: u64) {
        let index = (hash >> (64 - HLL_BITS)) as usize;
        let rest = (hash << HLL_BITS) | (1 << (HLL_BITS - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if self.registers[index] < rank {
            self.registers[index] = rank;
        }
    }

    fn estimate(&self) -> f64 {
        let m = self.registers.len() as f64;
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            // Small cardinalities: linear counting is exact enough.
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }
}

fn value_hash(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    // Equal values hash equally whatever their variant (1 and 1.0 are one
    // value to SQL): hash the display form's bytes for numbers.
    match v {
        Value::Int(i) => i.hash(&mut h),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => (*f as i64).hash(&mut h),
        other => rowenc::display_value(other).hash(&mut h),
    }
    // DefaultHasher's low bits are fine but its high bits feed the register
    // index: mix once more.
    let x = h.finish();
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (x >> 29)
}

/// Which columns to collect, and which of them get histograms.
pub struct Request {
    pub name: String,
    /// Column ids; empty means every column.
    pub columns: Vec<ColumnId>,
}

/// Reads the whole table once and stores its statistics. Returns what was stored.
pub async fn collect(db: &Db, table: &Arc<TableDesc>, request: &Request) -> SqlResult<TableStats> {
    let positions: Vec<usize> = if request.columns.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        request
            .columns
            .iter()
            .filter_map(|id| table.column_position(*id))
            .collect()
    };
    // Every column whose values have a useful order gets a histogram, indexed
    // or not (a filter on any column is estimated from it, as PostgreSQL's
    // statistics cover every column): not JSONB documents or arrays.
    let histogram_columns: Vec<bool> = positions
        .iter()
        .map(|&p| !matches!(table.columns[p].ty, SqlType::Jsonb | SqlType::Array(_)))
        .collect();
    let mut sketches: Vec<Sketch> = positions.iter().map(|_| Sketch::new()).collect();
    let mut nulls = vec![0u64; positions.len()];
    let mut sample: Vec<Vec<Value>> = Vec::new();
    let mut rng = StdRng::seed_from_u64(u64::from(table.id));
    let mut rows: u64 = 0;

    let mut txn = db.txn("create-statistics");
    let mut scanner = full_scan(table.clone());
    let scanned: SqlResult<()> = async {
        while let Some(batch) = scanner.next_batch(&mut txn, PAGE_ROWS).await? {
            for row in batch {
                rows += 1;
                for (k, &p) in positions.iter().enumerate() {
                    match row.get(p) {
                        None | Some(Value::Null) => nulls[k] += 1,
                        Some(v) => sketches[k].add(value_hash(v)),
                    }
                }
                // Reservoir sampling: every row has the same chance to be kept.
                if sample.len() < SAMPLE_ROWS {
                    sample.push(positions.iter().map(|&p| row[p].clone()).collect());
                } else {
                    let slot = rng.random_range(0..rows);
                    if (slot as usize) < SAMPLE_ROWS {
                        sample[slot as usize] = positions.iter().map(|&p| row[p].clone()).collect();
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    let _ = txn.rollback().await;
    scanned?;

    let now = db.now().wall / 1000;
    let mut columns = Vec::new();
    for (k, &p) in positions.iter().enumerate() {
        let non_null = rows - nulls[k];
        let distinct = if non_null == 0 {
            0
        } else {
            (sketches[k].estimate().round() as u64).clamp(1, non_null)
        };
        let histogram = if histogram_columns[k] {
            let values: Vec<Value> = sample
                .iter()
                .filter_map(|r| match &r[k] {
                    Value::Null => None,
                    v => Some(v.clone()),
                })
                .collect();
            build_histogram(values, non_null, distinct)
        } else {
            Vec::new()
        };
        columns.push(ColumnStats {
            column: table.columns[p].id,
            name: request.name.clone(),
            created_micros: now,
            row_count: rows,
            distinct_count: distinct,
            null_count: nulls[k],
            histogram,
        });
    }

    let previous = read(db, table.id).await?;
    let mut stats = TableStats {
        row_count: rows,
        created_micros: now,
        generation: previous.as_ref().map_or(1, |p| p.generation + 1),
        columns: previous
            .map(|p| {
                p.columns
                    .into_iter()
                    .filter(|c| {
                        table.column_by_id(c.column).is_some()
                            && !columns.iter().any(|n| n.column == c.column)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    stats.columns.extend(columns);
    stats.columns.sort_by_key(|c| c.column);
    db.put(&stats_key(table.id), &encode(&stats)?)
        .await
        .map_err(kv_err)?;
    Ok(stats)
}

/// An equi-depth histogram of `values` (a sample of the column's non-NULL
/// values), scaled to `non_null` rows with `distinct` distinct values.
pub fn build_histogram(mut values: Vec<Value>, non_null: u64, distinct: u64) -> Vec<Bucket> {
    if values.is_empty() {
        return Vec::new();
    }
    values.sort();
    let scale = non_null as f64 / values.len() as f64;
    let per_bucket = values.len().div_ceil(MAX_BUCKETS).max(1);
    // Distinct values in the sample, to scale each bucket's distinct count.
    let mut sample_distinct = 1usize;
    for w in values.windows(2) {
        if w[0] != w[1] {
            sample_distinct += 1;
        }
    }
    let distinct_scale = (distinct as f64 / sample_distinct as f64).max(1.0);
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut i = 0;
    while i < values.len() {
        // A bucket ends at the last copy of the value where it would end.
        let mut end = (i + per_bucket).min(values.len()) - 1;
        while end + 1 < values.len() && values[end + 1] == values[end] {
            end += 1;
        }
        let upper = values[end].clone();
        let mut first_eq = end;
        while first_eq > i && values[first_eq - 1] == upper {
            first_eq -= 1;
        }
        let num_eq = (end + 1 - first_eq) as f64;
        let num_range = (first_eq - i) as f64;
        let mut range_distinct = 0usize;
        for j in i..first_eq {
            if j == i || values[j] != values[j - 1] {
                range_distinct += 1;
            }
        }
        buckets.push(Bucket {
            upper,
            num_eq: num_eq * scale,
            num_range: num_range * scale,
            distinct_range: range_distinct as f64 * distinct_scale,
        });
        i = end + 1;
    }
    buckets
}

/// Refuses collection on what has no rows of its own.
pub fn check_collectable(table: &TableDesc) -> SqlResult<()> {
    if table.is_view() || table.is_sequence() {
        return Err(SqlError::new(
            tardigrade_sqltypes::error::codes::WRONG_OBJECT_TYPE,
            format!("\"{}\" is not a table", table.name),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperloglog_estimates_within_a_few_percent() {
        for n in [10u64, 1000, 100_000] {
            let mut s = Sketch::new();
            for i in 0..n {
                s.add(value_hash(&Value::Int(i as i64)));
                s.add(value_hash(&Value::Int(i as i64)));
            }
            let e = s.estimate();
            let err = (e - n as f64).abs() / n as f64;
            assert!(err < 0.05, "n={n} estimate={e}");
        }
    }

    #[test]
    fn histogram_buckets_are_equi_depth_and_cover_every_row() {
        let values: Vec<Value> = (0..10_000).map(|i| Value::Int(i % 500)).collect();
        let h = build_histogram(values, 20_000, 500);
        assert!(h.len() <= MAX_BUCKETS && h.len() > 100, "{}", h.len());
        let total: f64 = h.iter().map(|b| b.num_eq + b.num_range).sum();
        assert!((total - 20_000.0).abs() < 1e-6, "{total}");
        assert_eq!(h.last().map(|b| b.upper.clone()), Some(Value::Int(499)));
        assert!(h.windows(2).all(|w| w[0].upper < w[1].upper));
    }

    #[test]
    fn a_frequent_value_gets_its_own_bucket_bound() {
        let mut values: Vec<Value> = (0..100).map(Value::Int).collect();
        values.extend((0..5000).map(|_| Value::Int(42)));
        let h = build_histogram(values, 5100, 100);
        let b = h
            .iter()
            .find(|b| b.upper == Value::Int(42))
            .expect("42 is a bound");
        assert!(b.num_eq >= 5000.0, "{b:?}");
    }
}
