//! Normalization: rewrites of the bound plan that are always improvements,
//! applied before join ordering, index selection and the physical choices.
//!
//! Takes the binder's plan and gives an equivalent one (same output columns,
//! same rows). Each rule lives in its own file with its own tests and is
//! applied by [`normalize`] in the order below; a rule that does not apply
//! leaves the tree unchanged.
//!
//! - [`semi_join`]: `EXISTS`, `NOT EXISTS` and `IN (subquery)` conjuncts of a
//!   filter or an inner join condition become semi and anti joins, so a
//!   correlated subquery no longer runs once per outer row.
//!
//! To add a rule: a new file here with a function `Rel -> Rel` (recursing
//! through [`Rel::map_inputs`]), a line in [`normalize`], and a golden file
//! under `testdata/queries/` whose plans show it (so disabling it fails).
//! TODO(issue 12): constant folding (today in the binder), predicate pushdown
//! through aggregations and projections, scalar-subquery decorrelation into
//! joins with aggregation, redundant-join and outer-join simplification.

pub mod semi_join;

use super::Rel;

/// Applies every normalization rule.
pub fn normalize(rel: Rel) -> Rel {
    semi_join::decorrelate(rel)
}
