//! Rule: a projection of a projection becomes one projection, and a
//! projection that passes its input through unchanged disappears.
//!
//! Takes `Project(outer, Project(inner, X))`; gives `Project(outer', X)`,
//! where `outer'` is `outer` with each column replaced by the `inner`
//! expression computing it. Takes `Project([#0, #1, …, #n-1], X)` over an X
//! of n columns; gives X.
//!
//! Why it is correct: a projection maps each row to one row, so composing
//! two is substitution — provided no expression is evaluated a different
//! number of times: an inner expression that is not a plain column or
//! constant must be deterministic and read at most once by `outer`
//! (otherwise the rule leaves the pair alone), and neither side may hold a
//! subquery (a correlated one reads the row it is evaluated on, which
//! substitution would change under it).
//!
//! Why it helps: every projection copies each row; the binder stacks them
//! (a derived table's select list, a set operation's casts, the columns a
//! decorrelated subquery leaves), and each costs a pass over the rows.

use super::deterministic;
use super::push_filter::substitute;
use crate::plan::bind::referenced_columns;
use crate::plan::{Rel, Scalar};

/// Applies the rule everywhere in the tree.
pub fn merge(rel: Rel) -> Rel {
    crate::stack::grow(|| merge_node(rel))
}

fn merge_node(rel: Rel) -> Rel {
    match rel.map_inputs(&mut merge) {
        Rel::Project { input, exprs } => match *input {
            Rel::Project {
                input: below,
                exprs: inner,
            } if mergeable(&exprs, &inner) => {
                let exprs = exprs.into_iter().map(|e| substitute(e, &inner)).collect();
                Rel::project(*below, exprs)
            }
            input => Rel::project(input, exprs),
        },
        other => other,
    }
}

fn mergeable(outer: &[Scalar], inner: &[Scalar]) -> bool {
    if outer.iter().chain(inner).any(Scalar::needs_async) {
        return false;
    }
    let mut reads = vec![0usize; inner.len()];
    for e in outer {
        let mut cols = Vec::new();
        referenced_columns(e, &mut cols);
        for c in cols {
            match reads.get_mut(c) {
                Some(n) => *n += 1,
                // Not a column of the inner projection: leave it alone.
                None => return false,
            }
        }
    }
    inner.iter().zip(&reads).all(|(e, &n)| {
        let trivial = matches!(
            e,
            Scalar::Column { .. }
                | Scalar::Literal { .. }
                | Scalar::Param { .. }
                | Scalar::Outer { .. }
        );
        trivial || n == 0 || (n == 1 && deterministic(e))
    })
}
