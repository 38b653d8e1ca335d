//! Rule: constant folding after rewriting.
//!
//! The binder folds the constant parts of every expression it binds
//! ([`crate::plan::bind::fold`]); the rules before this one can create new
//! ones — filter pushdown substitutes a projection's expressions into a
//! condition (`one = 2` over `SELECT 1 AS one` becomes `1 = 2`), outer-join
//! simplification and decorrelation move conditions around. This rule folds
//! them again and simplifies what folding leaves:
//!
//! - `x AND TRUE` → `x`, `x AND FALSE` → `FALSE`, `x OR TRUE` → `TRUE`,
//!   `x OR FALSE` → `x` (only for the literals TRUE and FALSE: `x AND NULL`
//!   is not `x`);
//! - a filter whose condition is TRUE disappears; one that is FALSE or NULL
//!   keeps no row, so it and its input become an empty `VALUES` (the input
//!   is never read);
//! - an inner join whose condition is TRUE is a cross join; FALSE or NULL,
//!   empty.
//!
//! Takes any plan; gives the same rows. What is folded is what the binder
//! would fold: expressions without columns, parameters, subqueries or
//! volatile functions ([`Scalar::is_constant`]); an expression that fails to
//! evaluate (`1/0`) is left for run time, where it raises its error only if
//! it is evaluated.

use tardigrade_sqltypes::ops::BinOp;
use tardigrade_sqltypes::{SqlType, Value};

use crate::plan::bind::fold;
use crate::plan::join_order::output_types;
use crate::plan::{JoinKind, Rel, Scalar};

/// Applies the rule everywhere in the tree.
pub fn fold_constants(rel: Rel) -> Rel {
    crate::stack::grow(|| fold_node(rel))
}

fn fold_node(rel: Rel) -> Rel {
    let rel = rel
        .map_inputs(&mut fold_constants)
        .map_scalars(&mut |s| simplify(fold(s)));
    match rel {
        Rel::Filter { input, predicate } => match truth(&predicate) {
            Some(true) => *input,
            Some(false) => empty(&input),
            None => Rel::Filter { input, predicate },
        },
        Rel::Join {
            kind: JoinKind::Inner,
            left,
            right,
            on,
            equi,
        } => match on.as_ref().and_then(truth) {
            Some(true) => Rel::Join {
                kind: JoinKind::Inner,
                left,
                right,
                on: None,
                equi,
            },
            Some(false) => {
                let mut types = output_types(&left);
                types.extend(output_types(&right));
                Rel::Values {
                    rows: vec![],
                    types,
                }
            }
            None => Rel::Join {
                kind: JoinKind::Inner,
                left,
                right,
                on,
                equi,
            },
        },
        other => other,
    }
}

/// No rows, with `rel`'s columns.
fn empty(rel: &Rel) -> Rel {
    Rel::Values {
        rows: vec![],
        types: output_types(rel),
    }
}

/// What a condition always is: `Some(true)` for TRUE, `Some(false)` for
/// FALSE or NULL (both keep no row), `None` when it depends on the row.
fn truth(s: &Scalar) -> Option<bool> {
    match s {
        Scalar::Literal {
            value: Value::Null, ..
        } => Some(false),
        other => literal_bool(other),
    }
}

fn boolean(b: bool) -> Scalar {
    Scalar::Literal {
        value: Value::Bool(b),
        ty: SqlType::Bool,
    }
}

fn literal_bool(s: &Scalar) -> Option<bool> {
    match s {
        Scalar::Literal {
            value: Value::Bool(b),
            ..
        } => Some(*b),
        _ => None,
    }
}

/// AND / OR with a TRUE or FALSE operand, bottom up.
pub(crate) fn simplify(s: Scalar) -> Scalar {
    let unchanged = s.clone();
    s.transform(&mut |n| {
        Ok(match n {
            Scalar::Binary {
                op: op @ (BinOp::And | BinOp::Or),
                left,
                right,
                ty,
            } => {
                // The value that decides the operator (FALSE for AND, TRUE
                // for OR) and the one that leaves the other operand.
                let decides = op == BinOp::Or;
                match (literal_bool(&left), literal_bool(&right)) {
                    (Some(b), _) | (_, Some(b)) if b == decides => boolean(decides),
                    (Some(_), _) => *right,
                    (_, Some(_)) => *left,
                    _ => Scalar::Binary {
                        op,
                        left,
                        right,
                        ty,
                    },
                }
            }
            other => other,
        })
    })
    .unwrap_or(unchanged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(i: usize) -> Scalar {
        Scalar::Column {
            index: i,
            ty: SqlType::Bool,
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

    #[test]
    fn and_or_with_true_and_false_simplify_but_not_with_null() {
        let x = col(0);
        assert_eq!(simplify(bin(BinOp::And, x.clone(), boolean(true))), x);
        assert_eq!(
            simplify(bin(BinOp::And, boolean(false), x.clone())),
            boolean(false)
        );
        assert_eq!(
            simplify(bin(BinOp::Or, x.clone(), boolean(true))),
            boolean(true)
        );
        assert_eq!(simplify(bin(BinOp::Or, boolean(false), x.clone())), x);
        let null = Scalar::Literal {
            value: Value::Null,
            ty: SqlType::Bool,
        };
        let kept = bin(BinOp::And, x.clone(), null);
        assert_eq!(simplify(kept.clone()), kept);
        // Nested: (x AND TRUE) OR FALSE → x.
        assert_eq!(
            simplify(bin(
                BinOp::Or,
                bin(BinOp::And, x.clone(), boolean(true)),
                boolean(false)
            )),
            x
        );
    }
}
