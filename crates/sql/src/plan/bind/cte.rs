//! References to common table expressions, and which CTEs are computed
//! once.
//!
//! PostgreSQL 12's rule: a plain (non-recursive, read-only) CTE read once
//! is inlined into the query that reads it, so its filters and joins are
//! planned together with that query; one read more than once, or written
//! `AS MATERIALIZED`, is computed once per execution and every reference
//! reads its rows; `AS NOT MATERIALIZED` inlines it at each reference
//! unless its query has side effects (volatile functions, `nextval`), which
//! must run once.
//!
//! How many times a CTE is read is known only once the query that defines
//! it is bound, so each reference first binds to a placeholder
//! [`Rel::CteScan`] and counts. When the query is bound
//! ([`Binder::finish_cte_frame`]), each CTE of its WITH is either
//! substituted for its placeholders (inlined: the plan of today's inlining)
//! or kept as a [`Rel::With`] over the query, read by its placeholders.
//!
//! Two kinds of CTE never get placeholders and are inlined as before:
//! `WITH RECURSIVE` ones (their plan is a [`Rel::RecursiveUnion`], which a
//! LIMIT above may stop early; materializing would run it to the end) and
//! data-modifying ones (already run once, before the statement, and read
//! as a [`Rel::WorkTable`]). A reference from inside a DML statement to a
//! CTE defined outside it is inlined at once (TODO(issue 12): materialized
//! CTEs for DML), because DML plans are optimized as soon as they are
//! bound.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Binder, Scope};
use crate::plan::{Cte, CteScan, Rel, Scalar, map_cte_scans};

/// The CTEs of one WITH clause, by name.
pub(super) struct CteFrame {
    pub(super) names: HashMap<String, Arc<CteEntry>>,
    /// [`Binder::dml_depth`] when the frame was pushed: a reference from
    /// deeper (inside a DML statement) inlines at once.
    dml_depth: usize,
    /// The plain CTEs of the frame ([`Binder::cte_defs`]), in order.
    defined: Vec<usize>,
}

/// What a CTE's name binds to.
pub(super) struct CteEntry {
    /// A plain CTE's placeholder, or the plan inlined at every reference
    /// (recursive and data-modifying CTEs).
    pub(super) rel: Rel,
    pub(super) scope: Scope,
    /// A plain CTE's id in [`Binder::cte_defs`].
    pub(super) id: Option<usize>,
}

/// A plain CTE while the query that defines it is bound.
pub(super) struct CteDef {
    name: String,
    plan: Rel,
    /// `AS MATERIALIZED` (true) or `AS NOT MATERIALIZED` (false).
    materialized: Option<bool>,
    /// References bound to its placeholder.
    refs: usize,
    /// The subquery level it was defined at (`Binder::outer`'s length).
    level: usize,
    /// A reference is at another level: inlining its plan there would
    /// shift what its outer references read.
    crosses_level: bool,
    /// Its plan reads the rows of the queries around the WITH.
    reads_outer: bool,
}

impl Binder<'_> {
    /// Starts the frame of a WITH clause.
    pub(super) fn push_cte_frame(&mut self) {
        self.ctes.push(CteFrame {
            names: HashMap::new(),
            dml_depth: self.dml_depth,
            defined: Vec::new(),
        });
    }

    /// Binds `name` to `rel` (recursive and data-modifying CTEs: inlined at
    /// every reference) in the innermost frame.
    pub(super) fn define_inlined_cte(&mut self, name: String, rel: Rel, scope: Scope) {
        if let Some(frame) = self.ctes.last_mut() {
            frame.names.insert(
                name,
                Arc::new(CteEntry {
                    rel,
                    scope,
                    id: None,
                }),
            );
        }
    }

    /// Binds `name` to a plain CTE whose query is bound as `plan` with
    /// output columns `scope`, in the innermost frame.
    pub(super) fn define_cte(
        &mut self,
        name: String,
        plan: Rel,
        scope: Scope,
        materialized: Option<bool>,
    ) {
        if scope.len() != plan.width() {
            // Not expected; inlining is always correct.
            self.define_inlined_cte(name, plan, scope);
            return;
        }
        // Directly, or through a CTE it reads.
        let mut reads_outer = reads_outer_rows(&plan);
        let _ = map_cte_scans(plan.clone(), &mut |scan| {
            reads_outer |= self.cte_defs.get(&scan.id).is_some_and(|d| d.reads_outer);
            Rel::CteScan(scan)
        });
        let id = self.next_subquery;
        self.next_subquery += 1;
        let placeholder = Rel::CteScan(CteScan {
            id,
            name: name.clone(),
            columns: scope.iter().map(|c| c.name.clone()).collect(),
            types: scope.iter().map(|c| c.ty).collect(),
            source: Arc::new(plan.clone()),
        });
        self.cte_defs.insert(
            id,
            CteDef {
                name: name.clone(),
                plan,
                materialized,
                refs: 0,
                level: self.outer.len(),
                crosses_level: false,
                reads_outer,
            },
        );
        if let Some(frame) = self.ctes.last_mut() {
            frame.defined.push(id);
            frame.names.insert(
                name,
                Arc::new(CteEntry {
                    rel: placeholder,
                    scope,
                    id: Some(id),
                }),
            );
        }
    }

    /// The plan and columns a reference to the CTE `name` binds to (the
    /// innermost CTE of that name), or `None` when no CTE has the name.
    pub(super) fn cte_reference(&mut self, name: &str) -> Option<(Rel, Scope)> {
        let (entry, frame_dml_depth) = self
            .ctes
            .iter()
            .rev()
            .find_map(|f| f.names.get(name).map(|e| (e.clone(), f.dml_depth)))?;
        let Some(id) = entry.id else {
            return Some((entry.rel.clone(), entry.scope.clone()));
        };
        if self.dml_depth > frame_dml_depth {
            return Some((self.inline_now(entry.rel.clone()), entry.scope.clone()));
        }
        let level = self.outer.len();
        let mut correlates = 0;
        if let Some(def) = self.cte_defs.get_mut(&id) {
            def.refs += 1;
            def.crosses_level |= def.level != level;
            if def.reads_outer {
                correlates = level.saturating_sub(def.level);
            }
        }
        // A subquery reading a CTE over the outer row gives another
        // result for each: it runs per row, as if it read the row itself.
        let n = self.correlated.len();
        for k in 0..correlates.min(n) {
            self.correlated[n - 1 - k] = true;
        }
        Some((entry.rel.clone(), entry.scope.clone()))
    }

    /// `rel` with every placeholder of a CTE still being bound replaced by
    /// the CTE's plan, at every depth.
    fn inline_now(&self, rel: Rel) -> Rel {
        map_cte_scans(rel, &mut |scan| match self.cte_defs.get(&scan.id) {
            Some(def) => self.inline_now(def.plan.clone()),
            None => Rel::CteScan(scan),
        })
    }

    /// Ends the innermost frame, whose query was bound as `body`: each of
    /// its CTEs is inlined at its placeholders or materialized (see the
    /// module doc); gives the query's plan (a [`Rel::With`] over `body`
    /// when a CTE is materialized).
    pub(super) fn finish_cte_frame(&mut self, body: Rel) -> Rel {
        let Some(frame) = self.ctes.pop() else {
            return body;
        };
        let mut inlined: HashMap<usize, Rel> = HashMap::new();
        let mut kept: HashMap<usize, Arc<Rel>> = HashMap::new();
        let mut ctes = Vec::new();
        for id in frame.defined {
            let Some(def) = self.cte_defs.remove(&id) else {
                continue;
            };
            // Only earlier CTEs' placeholders are in it.
            let plan = resolve(def.plan, &inlined, &kept);
            let crosses = def.crosses_level && def.reads_outer;
            if materialize(def.refs, def.materialized, crosses, &plan) {
                let plan = Arc::new(plan);
                kept.insert(id, plan.clone());
                ctes.push(Cte {
                    id,
                    name: def.name,
                    plan,
                });
            } else {
                inlined.insert(id, plan);
            }
        }
        let body = resolve(body, &inlined, &kept);
        if ctes.is_empty() {
            body
        } else {
            Rel::With {
                ctes,
                body: Box::new(body),
            }
        }
    }

    /// Ends the frame of a DML statement's WITH clause: every reference
    /// from the statement was inlined at once, so its CTEs are forgotten.
    pub(super) fn drop_cte_frame(&mut self) {
        if let Some(frame) = self.ctes.pop() {
            for id in frame.defined {
                self.cte_defs.remove(&id);
            }
        }
    }

    /// Runs `f` as the binding of a DML statement: CTEs defined outside it
    /// are inlined at its references.
    pub(crate) fn binding_dml<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.dml_depth += 1;
        let out = f(self);
        self.dml_depth -= 1;
        out
    }
}

/// Whether a CTE read `refs` times (hint `hint`) is computed once;
/// `crosses`: it reads the outer row and is read from another subquery
/// level, where its inlined plan would read another row.
fn materialize(refs: usize, hint: Option<bool>, crosses: bool, plan: &Rel) -> bool {
    match (refs, hint) {
        (0, _) => false,
        (_, Some(true)) => true,
        _ if crosses => true,
        (1, _) => false,
        (_, Some(false)) => has_side_effects(plan),
        _ => true,
    }
}

/// `rel` with the placeholders of `inlined` CTEs replaced by their plans
/// and those of `kept` ones pointed at theirs.
fn resolve(rel: Rel, inlined: &HashMap<usize, Rel>, kept: &HashMap<usize, Arc<Rel>>) -> Rel {
    map_cte_scans(rel, &mut |scan| {
        if let Some(plan) = inlined.get(&scan.id) {
            return plan.clone();
        }
        match kept.get(&scan.id) {
            Some(plan) => Rel::CteScan(CteScan {
                source: plan.clone(),
                ..scan
            }),
            None => Rel::CteScan(scan),
        }
    })
}

/// Whether `rel` reads a row of the queries around it: an outer reference
/// that reaches past its own subqueries and lateral joins.
fn reads_outer_rows(rel: &Rel) -> bool {
    fn walk(rel: Rel, nesting: usize, found: &mut bool) -> Rel {
        // A lateral join's right side (its second input) reads the left
        // row at depth 1, so the rows around are one level further out.
        let lateral = matches!(rel, Rel::Lateral { .. });
        let mut input = 0;
        rel.map_inputs(&mut |r| {
            let deeper = usize::from(lateral && input == 1);
            input += 1;
            walk(r, nesting + deeper, found)
        })
        .map_scalars(&mut |s| {
            visit(&s, nesting, found);
            s
        })
    }
    fn visit(s: &Scalar, nesting: usize, found: &mut bool) {
        match s {
            Scalar::Outer { depth, .. } if *depth > nesting => *found = true,
            Scalar::Subquery(sub) => {
                walk((*sub.plan).clone(), nesting + 1, found);
            }
            _ => {}
        }
        s.for_each_child(&mut |c| visit(c, nesting, found));
    }
    let mut found = false;
    walk(rel.clone(), 0, &mut found);
    found
}

/// Whether running `rel` has effects beyond its rows or gives other rows
/// each time: a volatile function, `nextval` or `unique_rowid` anywhere in
/// it (its subqueries and CTEs included).
pub(super) fn has_side_effects(rel: &Rel) -> bool {
    crate::plan::any_scalar(rel, &mut |s: &Scalar| match s {
        Scalar::NextVal { .. } | Scalar::UniqueRowId => true,
        Scalar::Func { name, .. } => crate::plan::is_volatile(name),
        _ => false,
    })
}
