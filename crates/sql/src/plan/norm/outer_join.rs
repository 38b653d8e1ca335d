//! Rule: outer joins whose null-extended rows are rejected above them become
//! narrower joins.
//!
//! Takes a left, right or full join under a filter or a join condition that
//! is false or NULL whenever a column of the join's null-extended side is
//! NULL (it *rejects NULLs* on that column: `b.x > 5`, `b.x = a.y`,
//! `b.x IS NOT NULL`); gives the same join as an inner join (a left join
//! whose right columns are rejected, a right join whose left ones are), or
//! a full join as a left or right one when only one side is rejected.
//!
//! Why it is correct: the rows an outer join adds to the inner join's are
//! the unmatched rows of its preserved side, with NULL in every column of
//! the other side; a condition above that rejects NULLs on one of those
//! columns drops every such row, so the inner join gives the same rows.
//! Why it helps: inner joins are reordered ([`crate::plan::join_order`]) and
//! take pushed-down filters ([`super::push_filter`]); outer joins are
//! neither. PostgreSQL's `reduce_outer_joins` and CockroachDB's
//! `SimplifyLeftJoin` / `SimplifyRightJoin` do the same.
//!
//! A rejected column passes down through filters, projections of plain
//! columns, both sides of inner joins and the preserved side of outer joins;
//! other operators stop it.

use std::collections::BTreeSet;

use tardigrade_sqltypes::ops::{BinOp, UnOp};

use crate::plan::bind::conjuncts;
use crate::plan::join_order::output_types;
use crate::plan::{JoinKind, Rel, Scalar};

/// Applies the rule everywhere in the tree.
pub fn simplify(rel: Rel) -> Rel {
    narrow(rel, &BTreeSet::new())
}

/// `rel` simplified, given that every row it gives goes through a
/// condition rejecting NULLs in the output columns `rejected`.
fn narrow(rel: Rel, rejected: &BTreeSet<usize>) -> Rel {
    crate::stack::grow(|| narrow_node(rel, rejected))
}

fn narrow_node(rel: Rel, rejected: &BTreeSet<usize>) -> Rel {
    match rel {
        Rel::Filter { input, predicate } => {
            let mut below = rejected.clone();
            below.extend(null_rejected(&predicate));
            Rel::Filter {
                input: Box::new(narrow(*input, &below)),
                predicate,
            }
        }
        Rel::Project { input, exprs } => {
            let below = rejected
                .iter()
                .filter_map(|&c| match exprs.get(c) {
                    Some(Scalar::Column { index, .. }) => Some(*index),
                    _ => None,
                })
                .collect();
            Rel::Project {
                input: Box::new(narrow(*input, &below)),
                exprs,
            }
        }
        Rel::Join {
            kind,
            left,
            right,
            on,
            equi,
        } => {
            let width = output_types(&left).len();
            let left_rejected = rejected.iter().any(|&c| c < width);
            let right_rejected = rejected.iter().any(|&c| c >= width);
            let kind = match kind {
                JoinKind::Left if right_rejected => JoinKind::Inner,
                JoinKind::Right if left_rejected => JoinKind::Inner,
                JoinKind::Full => match (left_rejected, right_rejected) {
                    (true, true) => JoinKind::Inner,
                    // Rows with NULL left columns (the right side's
                    // unmatched ones) are dropped: what is left is the
                    // left join.
                    (true, false) => JoinKind::Left,
                    (false, true) => JoinKind::Right,
                    (false, false) => JoinKind::Full,
                },
                k => k,
            };
            // The join's own condition filters the rows of the sides it
            // does not preserve.
            let on_rejected = on.as_ref().map(null_rejected).unwrap_or_default();
            let side = |from: usize, to: usize, above: bool, on: bool| {
                let mut s = BTreeSet::new();
                if above {
                    s.extend(rejected.range(from..to).map(|c| c - from));
                }
                if on {
                    s.extend(on_rejected.range(from..to).map(|c| c - from));
                }
                s
            };
            // Which sides' rows reach the output unchanged (so a rejection
            // above applies to them), and which the condition filters.
            let (left_above, left_on, right_above, right_on) = match kind {
                JoinKind::Inner => (true, true, true, true),
                JoinKind::Left => (true, false, false, true),
                JoinKind::Right => (false, true, true, false),
                JoinKind::Semi | JoinKind::Anti => (true, false, false, true),
                JoinKind::Full => (false, false, false, false),
            };
            let left_set = side(0, width, left_above, left_on);
            let right_set = side(width, usize::MAX, right_above, right_on);
            Rel::Join {
                kind,
                left: Box::new(narrow(*left, &left_set)),
                right: Box::new(narrow(*right, &right_set)),
                on,
                equi,
            }
        }
        other => other.map_inputs(&mut |r| narrow(r, &BTreeSet::new())),
    }
}

/// The columns on which `predicate` rejects NULLs: if any of them is NULL,
/// the predicate is false or NULL.
pub(crate) fn null_rejected(predicate: &Scalar) -> BTreeSet<usize> {
    let mut parts = Vec::new();
    conjuncts(predicate.clone(), &mut parts);
    let mut out = BTreeSet::new();
    for p in &parts {
        out.extend(rejects(p));
    }
    out
}

/// Columns on which one conjunct rejects NULLs.
fn rejects(p: &Scalar) -> BTreeSet<usize> {
    match p {
        Scalar::Binary {
            op: BinOp::Or,
            left,
            right,
            ..
        } => {
            // Both branches must reject it.
            let l = null_rejected(left);
            let r = null_rejected(right);
            l.intersection(&r).copied().collect()
        }
        Scalar::Binary {
            op: BinOp::And,
            left,
            right,
            ..
        } => {
            let mut s = null_rejected(left);
            s.extend(null_rejected(right));
            s
        }
        Scalar::Binary {
            op:
                BinOp::Eq
                | BinOp::NotEq
                | BinOp::Lt
                | BinOp::LtEq
                | BinOp::Gt
                | BinOp::GtEq
                | BinOp::Like
                | BinOp::NotLike
                | BinOp::ILike
                | BinOp::NotILike,
            left,
            right,
            ..
        } => {
            let mut s = BTreeSet::new();
            strict_columns(left, &mut s);
            strict_columns(right, &mut s);
            s
        }
        Scalar::IsNull {
            expr,
            negated: true,
        } => {
            let mut s = BTreeSet::new();
            strict_columns(expr, &mut s);
            s
        }
        Scalar::InList {
            expr,
            negated: false,
            ..
        } => {
            let mut s = BTreeSet::new();
            strict_columns(expr, &mut s);
            s
        }
        _ => BTreeSet::new(),
    }
}

/// Columns whose NULL makes `e` NULL: `e` is built from them with
/// operators that give NULL on a NULL operand (arithmetic, casts).
fn strict_columns(e: &Scalar, out: &mut BTreeSet<usize>) {
    match e {
        Scalar::Column { index, .. } => {
            out.insert(*index);
        }
        Scalar::Cast { expr, .. }
        | Scalar::Unary {
            op: UnOp::Neg | UnOp::Plus | UnOp::BitNot,
            expr,
            ..
        } => strict_columns(expr, out),
        Scalar::Binary {
            op:
                BinOp::Add
                | BinOp::Sub
                | BinOp::Mul
                | BinOp::Div
                | BinOp::Mod
                | BinOp::Pow
                | BinOp::Concat,
            left,
            right,
            ..
        } => {
            strict_columns(left, out);
            strict_columns(right, out);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tardigrade_sqltypes::{SqlType, Value};

    fn col(index: usize) -> Scalar {
        Scalar::Column {
            index,
            ty: SqlType::Int8,
        }
    }

    fn bin(op: BinOp, l: Scalar, r: Scalar) -> Scalar {
        Scalar::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            ty: SqlType::Bool,
        }
    }

    fn set(cols: &[usize]) -> BTreeSet<usize> {
        cols.iter().copied().collect()
    }

    #[test]
    fn comparisons_reject_nulls_and_null_tests_or_coalesce_do_not() {
        let five = Scalar::literal(Value::Int(5), SqlType::Int8);
        assert_eq!(
            null_rejected(&bin(BinOp::Gt, col(3), five.clone())),
            set(&[3])
        );
        let sum = bin(BinOp::Add, col(1), col(2));
        assert_eq!(null_rejected(&bin(BinOp::Eq, sum, col(4))), set(&[1, 2, 4]));
        let is_null = Scalar::IsNull {
            expr: Box::new(col(3)),
            negated: false,
        };
        assert!(null_rejected(&is_null).is_empty(), "IS NULL keeps NULLs");
        let coalesce = Scalar::Coalesce {
            args: vec![col(3), five.clone()],
            ty: SqlType::Int8,
        };
        assert!(null_rejected(&bin(BinOp::Gt, coalesce, five.clone())).is_empty());
        let distinct = bin(BinOp::IsDistinctFrom, col(3), five.clone());
        assert!(null_rejected(&distinct).is_empty());
        // OR rejects what both branches reject.
        let either = bin(
            BinOp::Or,
            bin(BinOp::Gt, col(3), five.clone()),
            bin(BinOp::Lt, col(3), col(1)),
        );
        assert_eq!(null_rejected(&either), set(&[3]));
    }
}
