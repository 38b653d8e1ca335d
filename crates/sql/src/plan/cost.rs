//! The cost model: what each join algorithm costs, in rows read.
//!
//! One place for the formulas, so that the choice of join order
//! ([`super::join_order`], through the [`super::memo`]) and the choice of
//! join algorithm ([`super::physical`]) weigh the same alternatives alike:
//! an order is chosen because of the algorithms it allows, and those are
//! the algorithms that then run.
//!
//! The unit is one row read by a scan. A plan's cost is its inputs' costs
//! plus the work of its own operator; estimates of rows come from
//! [`super::cardinality`].

/// What one key lookup costs, in rows read by a scan. Measured (release
/// build, in-memory store): a batch of 200 lookups took as long as scanning
/// ~3000 rows, i.e. ~14 rows per lookup.
pub const LOOKUP_COST: f64 = 10.0;

/// What inserting one row into a hash table costs, relative to reading it.
pub const BUILD_COST: f64 = 2.0;

/// What one comparison of a sort costs, relative to reading a row: an
/// in-memory comparison of a few values (tens of nanoseconds) against a
/// row read from the store (about a microsecond).
pub const SORT_COST: f64 = 0.05;

/// Reading `rows` index entries, each holding `width` of the table's
/// columns (1 for the primary index), plus a lookup of the primary row for
/// each when the index does not hold every column the plan reads
/// (`index_join`). A narrower entry decodes faster, but every entry costs
/// a step of the scan whatever its width.
pub fn scan(rows: f64, width: f64, index_join: bool) -> f64 {
    let per_entry = 0.6 + 0.4 * width.clamp(0.0, 1.0);
    rows * (per_entry + if index_join { per_match(false) } else { 0.0 })
}

/// Sorting `rows` rows.
pub fn sort(rows: f64) -> f64 {
    rows * rows.max(2.0).log2() * SORT_COST
}

/// A (sub)plan's estimated output rows and total cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub rows: f64,
    pub cost: f64,
}

/// A join algorithm, as the memo and `EXPLAIN (OPT, MEMO)` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JoinAlgorithm {
    /// Builds a hash table over the right input, probes it with the left.
    Hash,
    /// Looks up each left row's matches in an index of the right table.
    Lookup,
    /// Merges two inputs ordered on the join columns.
    Merge,
}

impl JoinAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            JoinAlgorithm::Hash => "hash-join",
            JoinAlgorithm::Lookup => "lookup-join",
            JoinAlgorithm::Merge => "merge-join",
        }
    }
}

/// A hash join: both inputs, reading the probe side, building over the
/// right side, and producing the output.
pub fn hash_join(left: Estimate, right: Estimate, out_rows: f64) -> f64 {
    left.cost + right.cost + left.rows + BUILD_COST * right.rows + out_rows
}

/// A merge join: both inputs, one pass over each, and the output.
pub fn merge_join(left: Estimate, right: Estimate, out_rows: f64) -> f64 {
    left.cost + right.cost + left.rows + right.rows + out_rows
}

/// A lookup join: the left input, one lookup per left row, and per index
/// entry found (`matched_rows`: before a filter on the right side, which
/// is applied to what the lookups found) the entry plus `per_match` (a
/// primary-row read when the index does not hold the table's columns, 0
/// when it does). The right input is never read whole.
pub fn lookup_join(left: Estimate, matched_rows: f64, per_match: f64) -> f64 {
    left.cost + left.rows * LOOKUP_COST + matched_rows * (1.0 + per_match)
}

/// What a matched row costs a lookup join beyond its index entry.
pub fn per_match(index_covers_table: bool) -> f64 {
    if index_covers_table { 0.0 } else { LOOKUP_COST }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(rows: f64) -> Estimate {
        Estimate { rows, cost: rows }
    }

    #[test]
    fn a_few_lookups_beat_reading_a_large_table_and_many_do_not() {
        let big = est(1_000_000.0);
        assert!(lookup_join(est(10.0), 10.0, 0.0) < hash_join(est(10.0), big, 10.0));
        assert!(lookup_join(big, 1_000_000.0, 0.0) > hash_join(big, est(1_000.0), 1_000_000.0));
    }

    #[test]
    fn a_lookup_through_a_narrow_index_pays_for_each_primary_row() {
        // 25 nations joined to 150,000 customers through a nation index.
        let nations = est(25.0);
        let customers = est(150_000.0);
        let narrow = lookup_join(nations, 150_000.0, per_match(false));
        let covering = lookup_join(nations, 150_000.0, per_match(true));
        assert!(covering < hash_join(nations, customers, 150_000.0));
        assert!(narrow > hash_join(nations, customers, 150_000.0));
    }

    #[test]
    fn merging_ordered_inputs_beats_hashing_them() {
        assert!(
            merge_join(est(100.0), est(100.0), 100.0) < hash_join(est(100.0), est(100.0), 100.0)
        );
    }
}
