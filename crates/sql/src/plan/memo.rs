//! The memo of a join tree: every way of joining its relations that join
//! ordering considered, grouped by the relations they join, each costed.
//!
//! A *group* stands for one set of relations (one connected subset of a
//! join tree's leaves) and holds its equivalent *expressions*: the leaf
//! itself, or a join of two smaller groups by one algorithm, with the left
//! and right group in either order (commuting). All expressions of a group
//! produce the same rows, so the group has one row estimate; each
//! expression has its own cost (its inputs' best costs plus its own work,
//! from [`super::cost`]), and the group keeps the cheapest as its *best*.
//! The best expression of the group of all leaves, followed down through
//! its inputs' best expressions, is the chosen plan.
//!
//! [`super::join_order`] fills one memo per join tree;
//! `EXPLAIN (OPT, MEMO)` and the opttest command `memo` print them.
//!
//! A leaf that is a scan (under filters) has one expression per index of
//! its table, with the constraint the filter puts on it, costed by the
//! rows it reads and whether it needs the primary rows too; so a join's
//! cost counts what reading each input really costs, and a lookup join
//! into a table saves that. Outside joins, [`super::index`] fills a memo
//! of one such group per scan that has more than one way to be read.
//!
//! A join of two groups whose best expressions give rows ordered on
//! columns the query equates (a scan's index order, kept by the join
//! above it on the left) has a merge join among its expressions: its cost
//! drops the hash table, so orders that let inputs merge win when they
//! should. [`super::physical`] then builds the algorithm the same cost
//! model picks.
//!
//! Normalization rewrites in place and does not add alternatives here;
//! streaming aggregation is chosen after, outside the memo.
//! TODO(issue 12): orderings as a property of each expression rather than
//! of a group's best one (a group keeps one best expression, so an order
//! that only pays off higher up is not kept), and sorts as enforcers.

use std::collections::HashMap;

use super::cost::{Estimate, JoinAlgorithm};

/// Identifies a group within its memo.
pub type GroupId = usize;

/// A set of leaves, one bit each.
pub type Relations = u128;

/// One way of producing a group's rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// The join tree's leaf with this number.
    Leaf(usize),
    Join {
        algorithm: JoinAlgorithm,
        left: GroupId,
        right: GroupId,
    },
    /// A read of the group's one table, described by [`Memo::scans`] at
    /// this number.
    Scan(usize),
}

/// An expression and its total cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expr {
    pub op: Op,
    pub cost: f64,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub relations: Relations,
    pub rows: f64,
    pub exprs: Vec<Expr>,
    /// Index into `exprs` of the cheapest (the first one added on ties).
    pub best: usize,
}

impl Group {
    pub fn best(&self) -> Option<&Expr> {
        self.exprs.get(self.best)
    }

    /// The group's rows and best cost.
    pub fn estimate(&self) -> Option<Estimate> {
        self.best().map(|e| Estimate {
            rows: self.rows,
            cost: e.cost,
        })
    }
}

/// The memo of one join tree.
#[derive(Clone, Debug, Default)]
pub struct Memo {
    /// The leaves, as `EXPLAIN` names them.
    pub leaves: Vec<String>,
    pub groups: Vec<Group>,
    /// The scan alternatives [`Op::Scan`] names, as `EXPLAIN` describes
    /// them.
    pub scans: Vec<String>,
    /// For each of [`Memo::scans`], the output columns of its leaf that
    /// its rows come ordered on (what a merge join can use).
    pub scan_orders: Vec<Vec<usize>>,
    by_relations: HashMap<Relations, GroupId>,
}

impl Memo {
    pub fn new(leaves: Vec<String>) -> Memo {
        Memo {
            leaves,
            groups: Vec::new(),
            scans: Vec::new(),
            scan_orders: Vec::new(),
            by_relations: HashMap::new(),
        }
    }

    /// The group of `relations`, created with `rows` if it is new.
    pub fn group(&mut self, relations: Relations, rows: f64) -> GroupId {
        if let Some(&g) = self.by_relations.get(&relations) {
            return g;
        }
        let g = self.groups.len();
        self.groups.push(Group {
            relations,
            rows,
            exprs: Vec::new(),
            best: 0,
        });
        self.by_relations.insert(relations, g);
        g
    }

    pub fn find(&self, relations: Relations) -> Option<GroupId> {
        self.by_relations.get(&relations).copied()
    }

    pub fn get(&self, g: GroupId) -> Option<&Group> {
        self.groups.get(g)
    }

    /// Adds an expression to group `g`; it becomes the best if it is
    /// cheaper than the best so far by more than rounding (so on equal
    /// costs the first one considered — the written order — stays).
    pub fn add(&mut self, g: GroupId, op: Op, cost: f64) {
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        group.exprs.push(Expr { op, cost });
        let last = group.exprs.len() - 1;
        let better = match group.exprs.get(group.best) {
            Some(best) if last != group.best => cost < best.cost * (1.0 - 1e-9),
            _ => true,
        };
        if better {
            group.best = last;
        }
    }

    /// The memo as `EXPLAIN (OPT, MEMO)` prints it: groups from the whole
    /// tree down, each with its estimate and expressions, the best marked.
    pub fn render(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut order: Vec<GroupId> = (0..self.groups.len()).collect();
        order.sort_by_key(|&g| std::cmp::Reverse((self.groups[g].relations.count_ones(), g)));
        for (i, name) in self.leaves.iter().enumerate() {
            if self.leaves.len() == 1 {
                break;
            }
            if let Some(g) = self.find(1 << i) {
                out.push(format!("G{}: {name}", g + 1));
            }
        }
        for g in order {
            let group = &self.groups[g];
            if group.relations.count_ones() < 2 && group.exprs.len() < 2 {
                continue;
            }
            out.push(format!(
                "G{}: {{{}}} rows={}",
                g + 1,
                self.relation_names(group.relations).join(" "),
                group.rows.round() as u64
            ));
            for (k, e) in group.exprs.iter().enumerate() {
                let mark = if k == group.best { "*" } else { " " };
                let what = match e.op {
                    Op::Leaf(i) => format!("leaf {}", self.leaves.get(i).map_or("?", |s| s)),
                    Op::Join {
                        algorithm,
                        left,
                        right,
                    } => format!("{} G{} G{}", algorithm.name(), left + 1, right + 1),
                    Op::Scan(i) => self.scans.get(i).map_or("scan ?", |s| s).to_string(),
                };
                out.push(format!("  {mark} {what}  cost={}", e.cost.round() as u64));
            }
        }
        out
    }

    /// Every memo of a statement, numbered, each under a heading.
    pub fn render_all(memos: &[Memo]) -> Vec<String> {
        if memos.is_empty() {
            return vec!["no join to order".to_string()];
        }
        let mut out = Vec::new();
        for (i, memo) in memos.iter().enumerate() {
            if memo.leaves.len() != 1 {
                out.push(format!(
                    "memo {} (join of {} relations, {} groups):",
                    i + 1,
                    memo.leaves.len(),
                    memo.groups.len()
                ));
            } else {
                out.push(format!(
                    "memo {} (scan of {}, {} alternatives):",
                    i + 1,
                    memo.leaves.join(" "),
                    memo.scans.len()
                ));
            }
            out.extend(memo.render().into_iter().map(|l| format!("  {l}")));
        }
        out
    }

    fn relation_names(&self, relations: Relations) -> Vec<&str> {
        (0..self.leaves.len())
            .filter(|i| relations & (1 << i) != 0)
            .map(|i| self.leaves[i].as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cheapest_expression_is_best_and_ties_keep_the_first() {
        let mut memo = Memo::new(vec!["a".into(), "b".into()]);
        let a = memo.group(0b01, 10.0);
        let b = memo.group(0b10, 1000.0);
        memo.add(a, Op::Leaf(0), 10.0);
        memo.add(b, Op::Leaf(1), 1000.0);
        let ab = memo.group(0b11, 10.0);
        assert_eq!(memo.group(0b11, 99.0), ab, "one group per set of relations");
        let join = |algorithm, left, right| Op::Join {
            algorithm,
            left,
            right,
        };
        memo.add(ab, join(JoinAlgorithm::Hash, a, b), 3030.0);
        memo.add(ab, join(JoinAlgorithm::Hash, b, a), 3030.0);
        assert_eq!(memo.groups[ab].best, 0, "a tie keeps the first");
        memo.add(ab, join(JoinAlgorithm::Lookup, a, b), 120.0);
        assert_eq!(
            memo.groups[ab].best().map(|e| e.op),
            Some(join(JoinAlgorithm::Lookup, a, b))
        );
        assert_eq!(
            memo.groups[ab].estimate(),
            Some(Estimate {
                rows: 10.0,
                cost: 120.0
            })
        );
        let text = memo.render().join("\n");
        assert!(text.contains("G3: {a b} rows=10"), "{text}");
        assert!(text.contains("* lookup-join G1 G2  cost=120"), "{text}");
    }
}
