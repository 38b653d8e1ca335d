//! `EXPLAIN`: the plan tree, one operator per line, with the chosen index and
//! the constraint that gives its spans.

use super::{AggCall, IndexConstraint, JoinKind, Rel, Scalar, SetOpKind};
use crate::catalog::{IndexId, TableDesc};

/// Renders the plan as indented lines.
pub fn render(rel: &Rel) -> Vec<String> {
    let mut out = Vec::new();
    walk(rel, 0, &mut out);
    out
}

fn walk(rel: &Rel, depth: usize, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    let child = |r: &Rel, out: &mut Vec<String>| walk(r, depth + 1, out);
    match rel {
        Rel::Scan(scan) => {
            let index = index_name(&scan.table, scan.index);
            out.push(format!("{pad}scan {}@{}", scan.table.name, index));
            match &scan.constraint {
                Some(c) => out.push(format!("{pad}  spans: {}", describe_constraint(c))),
                None => out.push(format!("{pad}  spans: FULL SCAN")),
            }
            if !scan.covering {
                out.push(format!(
                    "{pad}  index join: {}@{}",
                    scan.table.name, scan.table.primary_index.name
                ));
            }
            if scan.reverse {
                out.push(format!("{pad}  reverse"));
            }
            if let Some(l) = scan.limit {
                out.push(format!("{pad}  limit: {l}"));
            }
        }
        Rel::Values { rows, types } => out.push(format!(
            "{pad}values ({} rows, {} columns)",
            rows.len(),
            types.len()
        )),
        Rel::Filter { input, predicate } => {
            out.push(format!("{pad}filter: {}", expr(predicate)));
            child(input, out);
        }
        Rel::Project { input, exprs } => {
            out.push(format!(
                "{pad}project: {}",
                exprs.iter().map(expr).collect::<Vec<_>>().join(", ")
            ));
            child(input, out);
        }
        Rel::Aggregate { input, group, aggs } => {
            let kind = if group.is_empty() {
                "scalar group-by"
            } else {
                "hash group-by"
            };
            out.push(format!("{pad}{kind}: {}", describe_aggregate(group, aggs)));
            child(input, out);
        }
        Rel::StreamAggregate { input, group, aggs } => {
            out.push(format!(
                "{pad}streaming group-by: {}",
                describe_aggregate(group, aggs)
            ));
            child(input, out);
        }
        Rel::Join {
            kind,
            left,
            right,
            on,
            equi,
        } => {
            let algo = if equi.is_empty() {
                "cross/nested-loop join"
            } else {
                "hash join"
            };
            out.push(format!(
                "{pad}{algo} ({}){}",
                kind_name(*kind),
                on.as_ref()
                    .map(|o| format!(" on {}", expr(o)))
                    .unwrap_or_default()
            ));
            child(left, out);
            child(right, out);
        }
        Rel::MergeJoin {
            kind,
            left,
            right,
            keys,
            on,
        } => {
            let lw = left.width();
            out.push(format!(
                "{pad}merge join ({}): keys [{}]{}",
                kind_name(*kind),
                keys.iter()
                    .map(|k| format!(
                        "@{} = @{}{}",
                        k.left + 1,
                        lw + k.right + 1,
                        if k.descending { " DESC" } else { "" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                on.as_ref()
                    .map(|o| format!(" on {}", expr(o)))
                    .unwrap_or_default()
            ));
            child(left, out);
            child(right, out);
        }
        Rel::LookupJoin(j) => {
            let key_names: Vec<String> = j
                .table
                .index(j.index)
                .map(|index| crate::rowenc::full_key_columns(&j.table, index))
                .unwrap_or_default()
                .iter()
                .zip(&j.keys)
                .map(|((col, _), l)| {
                    let name = j
                        .table
                        .column_by_id(*col)
                        .map(|c| c.name.clone())
                        .unwrap_or_default();
                    format!("{name} = @{}", l + 1)
                })
                .collect();
            out.push(format!(
                "{pad}lookup join ({}) {}@{}: keys [{}]{}",
                kind_name(j.kind),
                j.table.name,
                index_name(&j.table, j.index),
                key_names.join(", "),
                j.on.as_ref()
                    .map(|o| format!(" on {}", expr(o)))
                    .unwrap_or_default()
            ));
            if let Some(f) = &j.right_filter {
                // Shown over the joined row, like the join condition.
                let lw = j.left.width();
                let shifted = f.clone().transform(&mut |s| {
                    Ok(match s {
                        Scalar::Column { index, ty } => Scalar::Column {
                            index: index + lw,
                            ty,
                        },
                        other => other,
                    })
                });
                if let Ok(f) = shifted {
                    out.push(format!("{pad}  lookup filter: {}", expr(&f)));
                }
            }
            if !j.covering {
                out.push(format!(
                    "{pad}  index join: {}@{}",
                    j.table.name, j.table.primary_index.name
                ));
            }
            child(&j.left, out);
        }
        Rel::Sort { input, keys } => {
            out.push(format!(
                "{pad}sort: {}",
                keys.iter()
                    .map(|k| format!(
                        "{}{}",
                        expr(&k.expr),
                        if k.descending { " DESC" } else { "" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            child(input, out);
        }
        Rel::Limit {
            input,
            limit,
            offset,
        } => {
            out.push(format!(
                "{pad}limit{}{}",
                limit
                    .as_ref()
                    .map(|l| format!(" {}", expr(l)))
                    .unwrap_or_default(),
                offset
                    .as_ref()
                    .map(|o| format!(" offset {}", expr(o)))
                    .unwrap_or_default()
            ));
            child(input, out);
        }
        Rel::Distinct { input, .. } => {
            out.push(format!("{pad}distinct"));
            child(input, out);
        }
        Rel::SetOp {
            op,
            all,
            left,
            right,
        } => {
            let name = match op {
                SetOpKind::Union => "union",
                SetOpKind::Intersect => "intersect",
                SetOpKind::Except => "except",
            };
            out.push(format!("{pad}{name}{}", if *all { " all" } else { "" }));
            child(left, out);
            child(right, out);
        }
        Rel::Series { .. } => out.push(format!("{pad}generate_series")),
    }
}

fn index_name(table: &TableDesc, index: IndexId) -> String {
    table
        .index(index)
        .map(|i| i.name.clone())
        .unwrap_or_default()
}

fn kind_name(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Inner => "inner",
        JoinKind::Left => "left outer",
        JoinKind::Right => "right outer",
        JoinKind::Full => "full outer",
        JoinKind::Semi => "semi",
        JoinKind::Anti => "anti",
    }
}

fn describe_aggregate(group: &[Scalar], aggs: &[AggCall]) -> String {
    format!(
        "keys [{}] aggregates [{}]",
        group.iter().map(expr).collect::<Vec<_>>().join(", "),
        aggs.iter()
            .map(|a| format!(
                "{}({}{})",
                a.name,
                if a.distinct { "DISTINCT " } else { "" },
                a.args.iter().map(expr).collect::<Vec<_>>().join(", ")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn describe_constraint(c: &IndexConstraint) -> String {
    let mut parts = Vec::new();
    if c.prefixes.iter().any(|p| !p.is_empty()) {
        let alts: Vec<String> = c
            .prefixes
            .iter()
            .map(|p| format!("/{}", p.iter().map(expr).collect::<Vec<_>>().join("/")))
            .collect();
        parts.push(alts.join(", "));
    }
    if let Some((l, inclusive)) = &c.lower {
        parts.push(format!(
            "{} {}",
            if *inclusive { ">=" } else { ">" },
            expr(l)
        ));
    }
    if let Some((u, inclusive)) = &c.upper {
        parts.push(format!(
            "{} {}",
            if *inclusive { "<=" } else { "<" },
            expr(u)
        ));
    }
    parts.join(" ")
}

/// A compact rendering of a scalar for plans.
pub fn expr(s: &Scalar) -> String {
    match s {
        Scalar::Column { index, .. } => format!("@{}", index + 1),
        Scalar::Outer { depth, index, .. } => format!("outer{depth}.@{}", index + 1),
        Scalar::Literal { value, ty } => {
            if value.is_null() {
                "NULL".into()
            } else {
                value.to_text(*ty)
            }
        }
        Scalar::Param { index, .. } => format!("${}", index + 1),
        Scalar::Binary {
            op, left, right, ..
        } => format!("({} {:?} {})", expr(left), op, expr(right)),
        Scalar::Unary { op, expr: e, .. } => format!("{op:?}({})", expr(e)),
        Scalar::Cast { expr: e, to } => format!("{}::{to}", expr(e)),
        Scalar::Func { name, args, .. } => format!(
            "{name}({})",
            args.iter().map(expr).collect::<Vec<_>>().join(", ")
        ),
        Scalar::Subquery(sub) => format!(
            "subquery#{}{}",
            sub.id,
            if sub.correlated { " (correlated)" } else { "" }
        ),
        Scalar::AggRef { index, .. } => format!("agg#{index}"),
        Scalar::InList {
            expr: e,
            list,
            negated,
        } => format!(
            "{} {}IN ({})",
            expr(e),
            if *negated { "NOT " } else { "" },
            list.iter().map(expr).collect::<Vec<_>>().join(", ")
        ),
        Scalar::IsNull { expr: e, negated } => {
            format!("{} IS {}NULL", expr(e), if *negated { "NOT " } else { "" })
        }
        Scalar::IsBool {
            expr: e,
            value,
            negated,
        } => format!(
            "{} IS {}{}",
            expr(e),
            if *negated { "NOT " } else { "" },
            value
        ),
        Scalar::Coalesce { args, .. } => format!(
            "coalesce({})",
            args.iter().map(expr).collect::<Vec<_>>().join(", ")
        ),
        Scalar::Extreme { args, greatest, .. } => format!(
            "{}({})",
            if *greatest { "greatest" } else { "least" },
            args.iter().map(expr).collect::<Vec<_>>().join(", ")
        ),
        Scalar::NullIf { left, right, .. } => format!("nullif({}, {})", expr(left), expr(right)),
        Scalar::Case {
            whens, otherwise, ..
        } => format!(
            "CASE {}{}END",
            whens
                .iter()
                .map(|(w, t)| format!("WHEN {} THEN {} ", expr(w), expr(t)))
                .collect::<String>(),
            otherwise
                .as_ref()
                .map(|o| format!("ELSE {} ", expr(o)))
                .unwrap_or_default()
        ),
        Scalar::NextVal { sequence } => format!("nextval('{sequence}')"),
        Scalar::UniqueRowId => "unique_rowid()".into(),
    }
}
