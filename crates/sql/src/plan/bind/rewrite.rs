//! Rewrites of bound scalar trees that the binder's stages share.
//!
//! [`fold`] folds constant subexpressions into literals (every bound
//! expression, and the `fold_constants` normalization rule, go through it);
//! [`rebuild_children`] rebuilds a node with each direct child mapped, which
//! the select list's placeholder rewrites ([`super::select`],
//! [`super::window`]) recurse with.

use crate::plan::{Scalar, SubqueryKind};

/// Rebuilds `s` with each direct child replaced by `f(child)`.
pub(super) fn rebuild_children(s: Scalar, f: &mut dyn FnMut(Scalar) -> Scalar) -> Scalar {
    let mut b = |x: Box<Scalar>| Box::new(f(*x));
    match s {
        Scalar::Binary {
            op,
            left,
            right,
            ty,
        } => {
            let left = b(left);
            let right = b(right);
            Scalar::Binary {
                op,
                left,
                right,
                ty,
            }
        }
        Scalar::NullIf { left, right, ty } => {
            let left = b(left);
            let right = b(right);
            Scalar::NullIf { left, right, ty }
        }
        Scalar::Unary { op, expr, ty } => Scalar::Unary {
            op,
            expr: b(expr),
            ty,
        },
        Scalar::Cast { expr, to } => Scalar::Cast { expr: b(expr), to },
        Scalar::IsNull { expr, negated } => Scalar::IsNull {
            expr: b(expr),
            negated,
        },
        Scalar::IsBool {
            expr,
            value,
            negated,
        } => Scalar::IsBool {
            expr: b(expr),
            value,
            negated,
        },
        Scalar::Func { name, args, ty } => Scalar::Func {
            name,
            args: args.into_iter().map(&mut *f).collect(),
            ty,
        },
        Scalar::Coalesce { args, ty } => Scalar::Coalesce {
            args: args.into_iter().map(&mut *f).collect(),
            ty,
        },
        Scalar::Extreme { args, greatest, ty } => Scalar::Extreme {
            args: args.into_iter().map(&mut *f).collect(),
            greatest,
            ty,
        },
        Scalar::Case {
            operand,
            whens,
            otherwise,
            ty,
        } => Scalar::Case {
            operand: operand.map(|o| Box::new(f(*o))),
            whens: whens.into_iter().map(|(w, r)| (f(w), f(r))).collect(),
            otherwise: otherwise.map(|o| Box::new(f(*o))),
            ty,
        },
        Scalar::InList {
            expr,
            list,
            negated,
        } => {
            let expr = Box::new(f(*expr));
            Scalar::InList {
                expr,
                list: list.into_iter().map(&mut *f).collect(),
                negated,
            }
        }
        Scalar::Subquery(mut sub) => {
            sub.kind = match sub.kind {
                SubqueryKind::In { expr, cmp } => SubqueryKind::In {
                    expr: Box::new(f(*expr)),
                    cmp,
                },
                SubqueryKind::Quantified { expr, op, all } => SubqueryKind::Quantified {
                    expr: Box::new(f(*expr)),
                    op,
                    all,
                },
                k => k,
            };
            Scalar::Subquery(sub)
        }
        leaf => leaf,
    }
}

/// Folds constant subexpressions into literals. A constant that fails to
/// evaluate (1/0 in a CASE branch never taken) is left for run time.
pub fn fold(s: Scalar) -> Scalar {
    let folded = s.transform(&mut |node| {
        if matches!(node, Scalar::Literal { .. }) || !node.is_constant() {
            return Ok(node);
        }
        match crate::plan::eval::eval_constant_scalar(&node) {
            Ok(value) => {
                let ty = node.ty();
                Ok(Scalar::Literal { value, ty })
            }
            Err(_) => Ok(node),
        }
    });
    match folded {
        Ok(s) => s,
        Err(_) => Scalar::null(),
    }
}
