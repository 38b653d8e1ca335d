//! Join ordering: rewrites every tree of inner joins into the order with the
//! lowest estimated cost.
//!
//! Takes a bound plan whose inner joins are in the order the query wrote them
//! (a comma-separated FROM list is a chain of cross joins with the WHERE
//! conditions pushed into them); gives a plan with the same output columns in
//! the same positions, whose inner joins are reordered.
//!
//! A *join tree* is a maximal subtree of inner joins. Its *leaves* are the
//! inputs that are not inner joins (scans, filtered scans, outer joins,
//! aggregations — each reordered on its own), and its *predicates* are the
//! conjuncts of all its join conditions, over the tree's output columns.
//!
//! - Up to [`DP_LIMIT`] leaves: dynamic programming over subsets of leaves
//!   (DPsub). Every connected subset gets its cheapest plan, built from two
//!   smaller connected subsets joined by at least one predicate; cross joins
//!   are only considered between the connected components of the join graph,
//!   which are joined last, smallest first.
//! - Beyond: greedy operator ordering — repeatedly join the two connected
//!   components whose join produces the fewest rows.
//!
//! Costs come from [`super::cardinality`]: the cost of a join is the cost of
//! its inputs, plus reading the probe (left) side, building a hash table over
//! the right side (twice as expensive per row) and producing the output. When
//! the right side is one leaf that is a base table with an index on a join
//! column, a lookup join is costed too (a fixed cost per left row, no read of
//! the right side, and a primary-row lookup per matched row through an index
//! that does not hold the table's columns), which favours left-deep plans that drive lookups from a
//! selective start.
//!
//! Column equalities are transitive: `a = b AND b = c` implies `a = c`, so
//! the join graph also gets an edge between the leaves of `a` and `c` when
//! the query wrote none (PostgreSQL's equivalence classes). TPC-H Q5 needs
//! it: `c_nationkey = s_nationkey AND s_nationkey = n_nationkey` lets
//! customers be joined to the (filtered) nations before the orders. An
//! implied edge counts once per class in a join's selectivity, and never
//! where the query's own equality of the same class already links the two
//! sides, so estimates do not shrink from restating what is known.
//!
//! Each predicate is placed on the lowest join that has all its columns; a
//! predicate over one leaf becomes a filter on that leaf (where index
//! selection sees it); predicates with subqueries and those over no column
//! stay in a filter above the join tree; a projection on top restores the
//! original column order.

use std::collections::HashMap;

use tardigrade_sqltypes::SqlType;
use tardigrade_sqltypes::ops::BinOp;

use super::bind::{and_all, conjuncts, equi_pairs, referenced_columns};
use super::cardinality::{self, column_equality};
use super::cost::{self, Estimate, JoinAlgorithm};
use super::memo::{GroupId, Memo, Op};
use super::{JoinKind, Rel, Scalar};

/// Leaves up to which dynamic programming finds the cheapest order.
pub const DP_LIMIT: usize = 10;
/// Most leaves a tree may have to be reordered (the width of the bit sets).
const MAX_LEAVES: usize = 128;

type Set = u128;

fn bit(i: usize) -> Set {
    1 << i
}

/// Reorders every inner join tree in `rel` (and in its subqueries' plans,
/// which are optimized on their own).
pub fn reorder(rel: Rel) -> Rel {
    reorder_recording(rel, &mut Vec::new())
}

/// [`reorder`], adding the memo of each join tree to `memos` (inner trees
/// before the trees they are leaves of).
pub fn reorder_recording(rel: Rel, memos: &mut Vec<Memo>) -> Rel {
    crate::stack::grow(|| reorder_node(rel, memos))
}

fn reorder_node(rel: Rel, memos: &mut Vec<Memo>) -> Rel {
    match rel {
        Rel::Join {
            kind: JoinKind::Inner,
            ..
        } => reorder_tree(rel, memos),
        other => other.map_inputs(&mut |r| reorder_recording(r, memos)),
    }
}

struct Leaf {
    rel: Rel,
    /// Where its columns start in the tree's output.
    offset: usize,
    types: Vec<SqlType>,
    rows: f64,
}

struct Predicate {
    /// Over the tree's output columns.
    scalar: Scalar,
    leaves: Set,
    /// For a column equality: its equivalence class (see [`implied_equalities`]).
    class: Option<usize>,
    /// Derived by transitivity, not written in the query.
    implied: bool,
}

/// A join order: a leaf, or a join of two orders.
#[derive(Clone, Debug)]
enum Order {
    Leaf(usize),
    Join(Box<Order>, Box<Order>),
}

struct Graph {
    leaves: Vec<Leaf>,
    predicates: Vec<Predicate>,
    /// Selectivity of the two-leaf predicates between each pair of leaves
    /// (1 where there are none).
    pair_selectivity: Vec<Vec<f64>>,
    /// Leaves joined to each leaf by a two-leaf predicate.
    neighbours: Vec<Set>,
    /// For each leaf, the leaves whose columns an equality joins to the
    /// first column of one of its indexes (so a lookup join can reach it
    /// from them), with what each matched row costs beyond reading its
    /// index entry (0 when the index holds the table's columns, a lookup of
    /// the primary row otherwise).
    lookup_from: Vec<Vec<(usize, f64, usize)>>,
    /// The written equalities of each class: (class, leaf, leaf, the
    /// selectivity of that equality alone).
    class_links: Vec<(usize, usize, usize, f64)>,
    /// The implied equalities: (class, leaf, leaf, selectivity).
    implied: Vec<(usize, usize, usize, f64)>,
    /// Every column equality between two leaves, written or implied, as
    /// tree columns (what a merge join can merge on).
    equal_columns: Vec<(usize, usize)>,
}

fn reorder_tree(rel: Rel, memos: &mut Vec<Memo>) -> Rel {
    let width = rel.width();
    let mut leaves_rel = Vec::new();
    let mut scalars = Vec::new();
    flatten(rel, 0, &mut leaves_rel, &mut scalars);
    let leaves: Vec<Leaf> = leaves_rel
        .into_iter()
        .map(|(offset, rel)| {
            let rel = reorder_recording(rel, memos);
            Leaf {
                offset,
                types: output_types(&rel),
                rows: cardinality::rows(&rel),
                rel,
            }
        })
        .collect();
    if leaves.len() > MAX_LEAVES {
        return rebuild_unchanged(leaves, scalars);
    }
    let leaf_of_column: Vec<usize> = leaves
        .iter()
        .enumerate()
        .flat_map(|(i, l)| std::iter::repeat_n(i, l.types.len()))
        .collect();
    debug_assert_eq!(leaf_of_column.len(), width);
    let mut above = Vec::new();
    let mut predicates = Vec::new();
    for s in scalars {
        let mut cols = Vec::new();
        referenced_columns(&s, &mut cols);
        let leaves_used = cols
            .iter()
            .filter_map(|&c| leaf_of_column.get(c))
            .fold(0, |acc, &l| acc | bit(l));
        if s.needs_async() || leaves_used == 0 || cols.iter().any(|&c| c >= width) {
            above.push(s);
        } else {
            predicates.push(Predicate {
                scalar: s,
                leaves: leaves_used,
                class: None,
                implied: false,
            });
        }
    }
    implied_equalities(&mut predicates, &leaf_of_column);
    let mut graph = Graph::new(leaves, predicates, &leaf_of_column);
    graph.push_single_leaf_predicates();
    let mut memo = Memo::new(leaf_names(&graph.leaves));
    let order = graph.best_order(&mut memo);
    memos.push(memo);
    graph.build(order, width, above)
}

/// Groups the columns that two-leaf equalities (`x = y`, both columns of one
/// type) make equal into classes, marks each such predicate with its class,
/// and adds `x = y` for every pair of leaves a class spans that no written
/// equality of the class joins (one column per leaf: the first met).
fn implied_equalities(predicates: &mut Vec<Predicate>, leaf_of_column: &[usize]) {
    // Union-find over columns.
    fn root(parent: &mut HashMap<usize, usize>, c: usize) -> usize {
        let mut r = c;
        while let Some(&p) = parent.get(&r) {
            if p == r {
                break;
            }
            r = p;
        }
        parent.insert(c, r);
        r
    }
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut types: HashMap<usize, SqlType> = HashMap::new();
    let mut equalities = Vec::new();
    for (k, p) in predicates.iter().enumerate() {
        if p.leaves.count_ones() != 2 {
            continue;
        }
        let Scalar::Binary { left, right, .. } = &p.scalar else {
            continue;
        };
        let (Scalar::Column { ty: tx, .. }, Scalar::Column { ty: ty_, .. }) =
            (left.as_ref(), right.as_ref())
        else {
            continue;
        };
        let Some((x, y)) = column_equality(&p.scalar) else {
            continue;
        };
        // Transitivity is only sure between values of one type (an integer
        // equal to a float equal to another integer need not be equal).
        if tx != ty_
            || types.get(&x).is_some_and(|t| t != tx)
            || types.get(&y).is_some_and(|t| t != tx)
        {
            continue;
        }
        types.insert(x, *tx);
        types.insert(y, *tx);
        parent.entry(x).or_insert(x);
        parent.entry(y).or_insert(y);
        let (rx, ry) = (root(&mut parent, x), root(&mut parent, y));
        if rx != ry {
            parent.insert(rx, ry);
        }
        equalities.push((k, x, y));
    }
    if equalities.is_empty() {
        return;
    }
    // Number the classes; note which leaf pairs the written equalities join.
    let mut class_of_root: HashMap<usize, usize> = HashMap::new();
    let mut linked: std::collections::HashSet<(usize, usize, usize)> = Default::default();
    for &(k, x, _) in &equalities {
        let r = root(&mut parent, x);
        let n = class_of_root.len();
        let class = *class_of_root.entry(r).or_insert(n);
        predicates[k].class = Some(class);
        let p = predicates[k].leaves;
        let a = p.trailing_zeros() as usize;
        let b = (p & !bit(a)).trailing_zeros() as usize;
        linked.insert((class, a, b));
    }
    // Each class's first column in each leaf, in column order.
    let mut members: Vec<Vec<(usize, usize)>> = vec![Vec::new(); class_of_root.len()];
    let mut columns: Vec<usize> = parent.keys().copied().collect();
    columns.sort_unstable();
    for c in columns {
        let r = root(&mut parent, c);
        let Some(&class) = class_of_root.get(&r) else {
            continue;
        };
        let Some(&leaf) = leaf_of_column.get(c) else {
            continue;
        };
        if !members[class].iter().any(|&(l, _)| l == leaf) {
            members[class].push((leaf, c));
        }
    }
    for (class, cols) in members.iter().enumerate() {
        for (i, &(la, ca)) in cols.iter().enumerate() {
            for &(lb, cb) in &cols[i + 1..] {
                let (a, b) = (la.min(lb), la.max(lb));
                if linked.contains(&(class, a, b)) {
                    continue;
                }
                let ty = types.get(&ca).copied().unwrap_or(SqlType::Unknown);
                predicates.push(Predicate {
                    scalar: Scalar::Binary {
                        op: BinOp::Eq,
                        left: Box::new(Scalar::Column { index: ca, ty }),
                        right: Box::new(Scalar::Column { index: cb, ty }),
                        ty: SqlType::Bool,
                    },
                    leaves: bit(la) | bit(lb),
                    class: Some(class),
                    implied: true,
                });
            }
        }
    }
}

/// How the memo names each leaf: its table (numbered when a table appears
/// more than once), or its operator.
fn leaf_names(leaves: &[Leaf]) -> Vec<String> {
    let base: Vec<String> = leaves
        .iter()
        .map(|l| {
            let mut rel = &l.rel;
            while let Rel::Filter { input, .. } = rel {
                rel = input;
            }
            // Cheap labels: every plan builds its memos, not only EXPLAIN.
            match rel {
                Rel::Scan(s) => s.table.name.clone(),
                Rel::Values { .. } => "values".into(),
                Rel::Project { .. } | Rel::ProjectSet { .. } => "project".into(),
                Rel::Aggregate { .. } | Rel::StreamAggregate { .. } => "group-by".into(),
                Rel::Window { .. } => "window".into(),
                Rel::Join { .. }
                | Rel::MergeJoin { .. }
                | Rel::LookupJoin(_)
                | Rel::Lateral { .. } => "join".into(),
                Rel::SetOp { .. } | Rel::RecursiveUnion { .. } => "set operation".into(),
                Rel::WorkTable { .. } => "work table".into(),
                Rel::CteScan(s) => format!("cte {}", s.name),
                Rel::With { .. } => "with".into(),
                Rel::Series { .. } => "generate_series".into(),
                Rel::Sort { .. }
                | Rel::Limit { .. }
                | Rel::Distinct { .. }
                | Rel::Filter { .. } => "subquery".into(),
            }
        })
        .collect();
    base.iter()
        .enumerate()
        .map(|(i, name)| {
            let repeats = base.iter().filter(|n| *n == name).count() > 1;
            if repeats {
                let nth = base[..=i].iter().filter(|n| *n == name).count();
                format!("{name}#{nth}")
            } else {
                name.clone()
            }
        })
        .collect()
}

/// Collects the leaves (with their column offsets) and the condition
/// conjuncts of an inner join tree, shifting conditions to tree columns.
fn flatten(rel: Rel, offset: usize, leaves: &mut Vec<(usize, Rel)>, preds: &mut Vec<Scalar>) {
    match rel {
        Rel::Join {
            kind: JoinKind::Inner,
            left,
            right,
            on,
            ..
        } => {
            let lw = left.width();
            if let Some(on) = on {
                let mut parts = Vec::new();
                conjuncts(on, &mut parts);
                preds.extend(parts.into_iter().map(|p| shift(p, offset)));
            }
            flatten(*left, offset, leaves, preds);
            flatten(*right, offset + lw, leaves, preds);
        }
        Rel::Filter { input, predicate }
            if matches!(
                input.as_ref(),
                Rel::Join {
                    kind: JoinKind::Inner,
                    ..
                }
            ) =>
        {
            let mut parts = Vec::new();
            conjuncts(predicate, &mut parts);
            preds.extend(parts.into_iter().map(|p| shift(p, offset)));
            flatten(*input, offset, leaves, preds);
        }
        other => leaves.push((offset, other)),
    }
}

fn shift(s: Scalar, offset: usize) -> Scalar {
    if offset == 0 {
        return s;
    }
    remap(s, &|c| c + offset)
}

fn remap(s: Scalar, f: &dyn Fn(usize) -> usize) -> Scalar {
    let unchanged = s.clone();
    s.transform(&mut |node| {
        Ok(match node {
            Scalar::Column { index, ty } => Scalar::Column {
                index: f(index),
                ty,
            },
            other => other,
        })
    })
    .unwrap_or(unchanged)
}

/// The tree as it was (too many leaves to reorder), as a left-deep chain.
fn rebuild_unchanged(leaves: Vec<Leaf>, preds: Vec<Scalar>) -> Rel {
    let mut iter = leaves.into_iter();
    let Some(first) = iter.next() else {
        return Rel::Values {
            rows: vec![vec![]],
            types: vec![],
        };
    };
    let mut rel = first.rel;
    for leaf in iter {
        rel = Rel::Join {
            kind: JoinKind::Inner,
            left: Box::new(rel),
            right: Box::new(leaf.rel),
            on: None,
            equi: vec![],
        };
    }
    match and_all(preds) {
        Some(p) => super::bind::push_filter(rel, p),
        None => rel,
    }
}

impl Graph {
    fn new(leaves: Vec<Leaf>, predicates: Vec<Predicate>, leaf_of_column: &[usize]) -> Graph {
        let n = leaves.len();
        let mut pair_selectivity = vec![vec![1.0; n]; n];
        let mut neighbours = vec![0; n];
        let mut lookup_from: Vec<Vec<(usize, f64, usize)>> = vec![Vec::new(); n];
        // Column equalities between each pair of leaves (a < b), as (column
        // of a, column of b) relative to each leaf: they are estimated
        // together (a key on one side makes them one condition).
        let mut equalities: HashMap<(usize, usize), Vec<(usize, usize)>> = HashMap::new();
        let mut class_links = Vec::new();
        let mut implied = Vec::new();
        let mut equal_columns = Vec::new();
        for p in &predicates {
            if p.leaves.count_ones() != 2 {
                continue;
            }
            let a = p.leaves.trailing_zeros() as usize;
            let b = (p.leaves & !bit(a)).trailing_zeros() as usize;
            match column_equality(&p.scalar) {
                Some((x, y)) => {
                    equal_columns.push((x, y));
                    let (lx, ly) = (leaf_of_column[x], leaf_of_column[y]);
                    for (col, leaf, from) in [(x, lx, ly), (y, ly, lx)] {
                        if let Some(cost) =
                            lookup_match_cost(&leaves[leaf], col - leaves[leaf].offset)
                        {
                            lookup_from[leaf].push((from, cost, col - leaves[leaf].offset));
                        }
                    }
                    let (xa, yb) = if lx == a { (x, y) } else { (y, x) };
                    let pair = (xa - leaves[a].offset, yb - leaves[b].offset);
                    let alone = || {
                        cardinality::equalities_selectivity(&leaves[a].rel, &leaves[b].rel, &[pair])
                    };
                    match p.class {
                        Some(class) if p.implied => implied.push((class, a, b, alone())),
                        Some(class) => class_links.push((class, a, b, alone())),
                        None => {}
                    }
                    if !p.implied {
                        equalities.entry((a, b)).or_default().push(pair);
                    }
                }
                None => {
                    pair_selectivity[a][b] *= 1.0 / 3.0;
                    pair_selectivity[b][a] *= 1.0 / 3.0;
                }
            }
            neighbours[a] |= bit(b);
            neighbours[b] |= bit(a);
        }
        for ((a, b), pairs) in equalities {
            let sel = cardinality::equalities_selectivity(&leaves[a].rel, &leaves[b].rel, &pairs);
            pair_selectivity[a][b] *= sel;
            pair_selectivity[b][a] *= sel;
        }
        Graph {
            leaves,
            predicates,
            pair_selectivity,
            neighbours,
            lookup_from,
            class_links,
            implied,
            equal_columns,
        }
    }

    /// Moves predicates over a single leaf into a filter on that leaf.
    fn push_single_leaf_predicates(&mut self) {
        let mut kept = Vec::new();
        for p in std::mem::take(&mut self.predicates) {
            if p.leaves.count_ones() != 1 {
                kept.push(p);
                continue;
            }
            let i = p.leaves.trailing_zeros() as usize;
            let leaf = &mut self.leaves[i];
            let offset = leaf.offset;
            let local = remap(p.scalar, &|c| c - offset);
            let rel = std::mem::replace(
                &mut leaf.rel,
                Rel::Values {
                    rows: vec![],
                    types: vec![],
                },
            );
            leaf.rel = super::bind::push_filter(rel, local);
            leaf.rows = cardinality::rows(&leaf.rel);
        }
        self.predicates = kept;
    }

    fn join_selectivity(&self, a: Set, b: Set) -> f64 {
        let mut sel = 1.0;
        for i in members(a) {
            if self.neighbours[i] & b == 0 {
                continue;
            }
            for j in members(b) {
                sel *= self.pair_selectivity[i][j];
            }
        }
        // One equality per class restricts a join: the columns on each side
        // are already equal among themselves. Written equalities of a class
        // crossing the join beyond the least selective one were counted
        // above: take them back out. A class no written equality crosses
        // counts its least selective implied one.
        let across = |x: usize, y: usize| {
            (a & bit(x) != 0 && b & bit(y) != 0) || (a & bit(y) != 0 && b & bit(x) != 0)
        };
        // (class, least selective, product of all) over the crossing equalities.
        let mut written: Vec<(usize, f64, f64)> = Vec::new();
        for &(class, x, y, s) in &self.class_links {
            if across(x, y) {
                match written.iter_mut().find(|w| w.0 == class) {
                    Some(w) => {
                        w.1 = w.1.max(s);
                        w.2 *= s;
                    }
                    None => written.push((class, s, s)),
                }
            }
        }
        for &(_, least, all) in &written {
            if all > 0.0 {
                sel *= least / all;
            }
        }
        let mut implied: Vec<(usize, f64)> = Vec::new();
        for &(class, x, y, s) in &self.implied {
            if !across(x, y) || written.iter().any(|w| w.0 == class) {
                continue;
            }
            match implied.iter_mut().find(|(c, _)| *c == class) {
                Some((_, least)) => *least = least.max(s),
                None => implied.push((class, s)),
            }
        }
        for (_, s) in implied {
            sel *= s;
        }
        sel.min(1.0)
    }

    fn connected(&self, a: Set, b: Set) -> bool {
        members(a).any(|i| self.neighbours[i] & b != 0)
    }

    /// Joining `l` (probe side) with `r` (build side): the rows it gives
    /// and what each algorithm that applies costs, hash join first.
    fn join_options(
        &self,
        (l, ls): (Estimate, Set),
        (r, rs): (Estimate, Set),
    ) -> (f64, Vec<(JoinAlgorithm, f64)>) {
        let rows = (l.rows * r.rows * self.join_selectivity(ls, rs)).max(1.0);
        let mut options = vec![(JoinAlgorithm::Hash, cost::hash_join(l, r, rows))];
        if rs.count_ones() == 1 {
            let leaf = rs.trailing_zeros() as usize;
            let right = &self.leaves[leaf].rel;
            let lookup = self.lookup_from[leaf]
                .iter()
                .filter(|(from, ..)| ls & bit(*from) != 0)
                .map(|&(_, per_match, col)| {
                    let fetched = cardinality::lookup_fetched(right, &[col], l.rows, rows);
                    cost::lookup_join(l, fetched, per_match)
                })
                .reduce(f64::min);
            if let Some(c) = lookup {
                options.push((JoinAlgorithm::Lookup, c));
            }
        }
        (rows, options)
    }

    /// The group of leaf `i`: the ways of reading it when it is a scan
    /// (each index, costed by what it reads), else the leaf itself, costed
    /// by its rows.
    fn leaf_group(&self, memo: &mut Memo, i: usize) -> GroupId {
        let rows = self.leaves[i].rows;
        let g = memo.group(bit(i), rows);
        if memo.get(g).is_some_and(|g| g.exprs.is_empty()) {
            let options = super::index::leaf_scan_options(&self.leaves[i].rel);
            if options.is_empty() {
                memo.add(g, Op::Leaf(i), rows);
            }
            for o in options {
                let k = memo.scans.len();
                memo.scans.push(o.description);
                memo.scan_orders.push(o.order);
                memo.add(g, Op::Scan(k), o.cost);
            }
        }
        g
    }

    /// The tree columns the rows of group `g`'s best expression come in
    /// ascending order on: a scan's index order, a join's left input's
    /// (hash, lookup and merge joins all keep it).
    fn group_order(&self, memo: &Memo, g: GroupId) -> Vec<usize> {
        let Some(group) = memo.get(g) else {
            return Vec::new();
        };
        let leaf = group.relations.trailing_zeros() as usize;
        let offset = self.leaves.get(leaf).map_or(0, |l| l.offset);
        match group.best().map(|e| e.op) {
            Some(Op::Join { left, .. }) => self.group_order(memo, left),
            Some(Op::Scan(k)) => memo
                .scan_orders
                .get(k)
                .map(|o| o.iter().map(|c| c + offset).collect())
                .unwrap_or_default(),
            Some(Op::Leaf(i)) => self.leaves.get(i).map_or_else(Vec::new, |l| {
                super::index::ascending_order(&l.rel)
                    .into_iter()
                    .map(|c| c + l.offset)
                    .collect()
            }),
            None => Vec::new(),
        }
    }

    /// How many leading columns of two orders an equality of the join
    /// query pairs (0: no merge join).
    fn merge_columns(&self, left: &[usize], right: &[usize]) -> usize {
        left.iter()
            .zip(right)
            .take_while(|(a, b)| {
                self.equal_columns
                    .iter()
                    .any(|&(x, y)| (x == **a && y == **b) || (x == **b && y == **a))
            })
            .count()
    }

    /// A group's relations and best estimate (`None`: nothing costed yet).
    fn planned(memo: &Memo, g: GroupId) -> Option<(Estimate, Set)> {
        let group = memo.get(g)?;
        Some((group.estimate()?, group.relations))
    }

    /// Adds the joins of groups `l` and `r` (`l` probing) by every
    /// algorithm that applies to the group of their union.
    fn add_joins(&self, memo: &mut Memo, l: GroupId, r: GroupId) -> Option<GroupId> {
        let left = Self::planned(memo, l)?;
        let right = Self::planned(memo, r)?;
        let (rows, mut options) = self.join_options(left, right);
        // Inputs ordered on the join's columns merge.
        let merged = self.merge_columns(&self.group_order(memo, l), &self.group_order(memo, r));
        if merged > 0 {
            options.push((
                JoinAlgorithm::Merge,
                cost::merge_join(left.0, right.0, rows),
            ));
        }
        let g = memo.group(left.1 | right.1, rows);
        for (algorithm, cost) in options {
            let op = Op::Join {
                algorithm,
                left: l,
                right: r,
            };
            memo.add(g, op, cost);
        }
        Some(g)
    }

    /// Fills `memo` with the join tree's alternatives and returns the
    /// order of its best plan.
    fn best_order(&self, memo: &mut Memo) -> Order {
        let components = self.components();
        let mut groups: Vec<GroupId> = components
            .iter()
            .filter_map(|&c| {
                if c.count_ones() as usize <= DP_LIMIT {
                    self.dp(memo, c)
                } else {
                    self.greedy(memo, c)
                }
            })
            .collect();
        // Cross join the components, smallest first (the larger side probes).
        groups.sort_by(|&a, &b| {
            let rows = |g: GroupId| memo.get(g).map_or(0.0, |g| g.rows);
            rows(b).total_cmp(&rows(a))
        });
        let mut iter = groups.into_iter();
        let Some(mut acc) = iter.next() else {
            return self.written_order();
        };
        for g in iter {
            acc = self.add_joins(memo, acc, g).unwrap_or(acc);
        }
        let all = self
            .leaves
            .iter()
            .enumerate()
            .fold(0, |s, (i, _)| s | bit(i));
        match memo.get(acc) {
            Some(group) if group.relations == all => order_of(memo, acc),
            // Not expected: every leaf is in some component.
            _ => self.written_order(),
        }
    }

    /// The leaves joined left-deep in the order the query wrote them.
    fn written_order(&self) -> Order {
        (1..self.leaves.len()).fold(Order::Leaf(0), |acc, i| {
            Order::Join(Box::new(acc), Box::new(Order::Leaf(i)))
        })
    }

    fn components(&self) -> Vec<Set> {
        let n = self.leaves.len();
        let mut seen: Set = 0;
        let mut out = Vec::new();
        for start in 0..n {
            if seen & bit(start) != 0 {
                continue;
            }
            let mut comp = bit(start);
            let mut frontier = bit(start);
            while frontier != 0 {
                let mut next = 0;
                for i in members(frontier) {
                    next |= self.neighbours[i];
                }
                frontier = next & !comp;
                comp |= next;
            }
            seen |= comp;
            out.push(comp);
        }
        out
    }

    /// Dynamic programming over the connected subsets of `all`: every
    /// connected subset gets a group holding its joins of two smaller
    /// connected subsets (in both orders) by each algorithm.
    fn dp(&self, memo: &mut Memo, all: Set) -> Option<GroupId> {
        let ids: Vec<usize> = members(all).collect();
        let k = ids.len();
        // Subsets of `all` indexed by a k-bit mask.
        let expand = |mask: usize| -> Set {
            let mut s = 0;
            for (b, &leaf) in ids.iter().enumerate() {
                if mask & (1 << b) != 0 {
                    s |= bit(leaf);
                }
            }
            s
        };
        for &leaf in &ids {
            self.leaf_group(memo, leaf);
        }
        for mask in 1usize..(1 << k) {
            if mask.count_ones() < 2 {
                continue;
            }
            // Every split into a non-empty left and right part, the left
            // part ascending (so on equal costs the written order wins).
            let mut left = mask.wrapping_neg() & mask;
            while left != mask {
                let (ls, rs) = (expand(left), expand(mask & !left));
                if let (Some(l), Some(r)) = (memo.find(ls), memo.find(rs))
                    && self.connected(ls, rs)
                {
                    self.add_joins(memo, l, r);
                }
                left = left.wrapping_sub(mask) & mask;
            }
        }
        match memo.find(all) {
            Some(g) => Some(g),
            None => self.greedy(memo, all),
        }
    }

    /// Greedy operator ordering over the leaves of `all` (connected): only
    /// the joins it picks go into the memo.
    fn greedy(&self, memo: &mut Memo, all: Set) -> Option<GroupId> {
        let mut parts: Vec<GroupId> = members(all).map(|i| self.leaf_group(memo, i)).collect();
        while parts.len() > 1 {
            let mut pick: Option<(usize, usize, f64, f64)> = None;
            for a in 0..parts.len() {
                for b in 0..parts.len() {
                    let (Some(pa), Some(pb)) =
                        (Self::planned(memo, parts[a]), Self::planned(memo, parts[b]))
                    else {
                        continue;
                    };
                    if a == b || !self.connected(pa.1, pb.1) {
                        continue;
                    }
                    // The smaller side builds.
                    if pb.0.rows > pa.0.rows || (pb.0.rows == pa.0.rows && b < a) {
                        continue;
                    }
                    let (rows, options) = self.join_options(pa, pb);
                    let cost = options.iter().map(|o| o.1).fold(f64::INFINITY, f64::min);
                    let better = pick
                        .as_ref()
                        .is_none_or(|&(_, _, r, c)| (rows, cost) < (r, c));
                    if better {
                        pick = Some((a, b, rows, cost));
                    }
                }
            }
            let Some((a, b, _, _)) = pick else { break };
            let joined = self.add_joins(memo, parts[a], parts[b])?;
            let (hi, lo) = if a > b { (a, b) } else { (b, a) };
            parts.swap_remove(hi);
            parts.swap_remove(lo);
            parts.push(joined);
        }
        // Disconnected leftovers (not expected: `all` is connected).
        let mut iter = parts.into_iter();
        let mut acc = iter.next()?;
        for g in iter {
            acc = self.add_joins(memo, acc, g).unwrap_or(acc);
        }
        Some(acc)
    }

    /// Builds the plan for `order`, placing each predicate on the lowest join
    /// that covers it, then restores the tree's column order.
    fn build(mut self, order: Order, width: usize, above: Vec<Scalar>) -> Rel {
        let mut leaves: Vec<Option<Leaf>> = std::mem::take(&mut self.leaves)
            .into_iter()
            .map(Some)
            .collect();
        let mut placed = vec![false; self.predicates.len()];
        let (rel, layout, _) = self.build_node(&order, &mut leaves, &mut placed);
        // Tree column -> position in the new layout.
        let mut position = vec![0usize; width];
        for (pos, &col) in layout.iter().enumerate() {
            if let Some(p) = position.get_mut(col) {
                *p = pos;
            }
        }
        let types = output_types(&rel);
        let identity = layout.iter().enumerate().all(|(i, &c)| i == c);
        let rel = if identity {
            rel
        } else {
            Rel::Project {
                exprs: (0..width)
                    .map(|c| Scalar::Column {
                        index: position[c],
                        ty: types.get(position[c]).copied().unwrap_or(SqlType::Unknown),
                    })
                    .collect(),
                input: Box::new(rel),
            }
        };
        match and_all(above) {
            Some(p) => Rel::Filter {
                input: Box::new(rel),
                predicate: p,
            },
            None => rel,
        }
    }

    /// Returns the plan, its columns (as tree columns, in output order) and
    /// the leaves it covers.
    fn build_node(
        &self,
        order: &Order,
        leaves: &mut [Option<Leaf>],
        placed: &mut [bool],
    ) -> (Rel, Vec<usize>, Set) {
        match order {
            Order::Leaf(i) => {
                let Some(leaf) = leaves.get_mut(*i).and_then(Option::take) else {
                    return (
                        Rel::Values {
                            rows: vec![],
                            types: vec![],
                        },
                        vec![],
                        0,
                    );
                };
                let layout = (leaf.offset..leaf.offset + leaf.types.len()).collect();
                (leaf.rel, layout, bit(*i))
            }
            Order::Join(l, r) => {
                let (left, mut layout, ls) = self.build_node(l, leaves, placed);
                let (right, right_layout, rs) = self.build_node(r, leaves, placed);
                let left_width = layout.len();
                layout.extend(right_layout);
                let set = ls | rs;
                let mut position: HashMap<usize, usize> = HashMap::with_capacity(layout.len());
                for (pos, &col) in layout.iter().enumerate() {
                    position.insert(col, pos);
                }
                let mut on = Vec::new();
                // Written predicates first; an implied equality only where no
                // other equality of its class joins the two sides here (it
                // would restate that one).
                let mut classes_here = Vec::new();
                let order = self
                    .predicates
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !p.implied)
                    .chain(
                        self.predicates
                            .iter()
                            .enumerate()
                            .filter(|(_, p)| p.implied),
                    );
                for (k, p) in order {
                    if placed[k] || p.leaves & !set != 0 {
                        continue;
                    }
                    placed[k] = true;
                    if let Some(class) = p.class {
                        if p.implied && classes_here.contains(&class) {
                            continue;
                        }
                        classes_here.push(class);
                    }
                    on.push(remap(p.scalar.clone(), &|c| {
                        position.get(&c).copied().unwrap_or(c)
                    }));
                }
                let on = and_all(on);
                let equi = on
                    .as_ref()
                    .map(|o| equi_pairs(o, left_width))
                    .unwrap_or_default();
                (
                    Rel::Join {
                        kind: JoinKind::Inner,
                        left: Box::new(left),
                        right: Box::new(right),
                        on,
                        equi,
                    },
                    layout,
                    set,
                )
            }
        }
    }
}

/// The order of the best plan of group `g`: its best expression, down
/// through its inputs' best expressions.
fn order_of(memo: &Memo, g: GroupId) -> Order {
    let group = memo.get(g);
    match group.and_then(|g| g.best()).map(|e| e.op) {
        Some(Op::Join { left, right, .. }) => Order::Join(
            Box::new(order_of(memo, left)),
            Box::new(order_of(memo, right)),
        ),
        Some(Op::Leaf(i)) => Order::Leaf(i),
        // A leaf's group holds one leaf.
        Some(Op::Scan(_)) => {
            Order::Leaf(group.map_or(0, |g| g.relations.trailing_zeros() as usize))
        }
        None => Order::Leaf(0),
    }
}

fn members(s: Set) -> impl Iterator<Item = usize> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let i = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        Some(i)
    })
}

/// When an index of the leaf's table starts with column `col`: what a row
/// matched through it costs beyond its index entry — nothing through the
/// primary index or one holding every column, a primary-row lookup
/// otherwise (the cheapest such index).
fn lookup_match_cost(leaf: &Leaf, col: usize) -> Option<f64> {
    let mut rel = &leaf.rel;
    while let Rel::Filter { input, .. } = rel {
        rel = input;
    }
    let Rel::Scan(scan) = rel else { return None };
    let column = scan.table.columns.get(col)?;
    let table = &scan.table;
    table
        .all_indexes()
        .filter(|i| !i.is_partial() && i.columns.first().is_some_and(|c| *c == column.id))
        .map(|i| cost::per_match(crate::rowenc::index_covers_table(table, i.id)))
        .reduce(f64::min)
}

/// The types of `rel`'s output columns.
pub fn output_types(rel: &Rel) -> Vec<SqlType> {
    match rel {
        Rel::Scan(s) => s.table.columns.iter().map(|c| c.ty).collect(),
        Rel::Values { types, .. } => types.clone(),
        Rel::Filter { input, .. }
        | Rel::Sort { input, .. }
        | Rel::Limit { input, .. }
        | Rel::Distinct { input, .. } => output_types(input),
        Rel::Project { exprs, .. } => exprs.iter().map(Scalar::ty).collect(),
        Rel::ProjectSet { input, srfs } => {
            let mut t = output_types(input);
            t.extend(srfs.iter().map(|c| c.ty));
            t
        }
        Rel::Window { input, funcs, .. } => {
            let mut t = output_types(input);
            t.extend(funcs.iter().map(|f| f.ty));
            t
        }
        Rel::Aggregate { group, aggs, .. } | Rel::StreamAggregate { group, aggs, .. } => group
            .iter()
            .map(Scalar::ty)
            .chain(aggs.iter().map(|a| a.ty))
            .collect(),
        Rel::Join {
            kind: JoinKind::Semi | JoinKind::Anti,
            left,
            ..
        }
        | Rel::MergeJoin {
            kind: JoinKind::Semi | JoinKind::Anti,
            left,
            ..
        } => output_types(left),
        Rel::Join { left, right, .. }
        | Rel::MergeJoin { left, right, .. }
        | Rel::Lateral { left, right, .. } => {
            let mut t = output_types(left);
            t.extend(output_types(right));
            t
        }
        Rel::LookupJoin(j) => {
            let mut t = output_types(&j.left);
            if !matches!(j.kind, JoinKind::Semi | JoinKind::Anti) {
                t.extend(
                    (0..j.right_width())
                        .filter_map(|c| j.table.columns.get(j.right_table_position(c)))
                        .map(|c| c.ty),
                );
            }
            t
        }
        Rel::SetOp { left, .. } => output_types(left),
        Rel::RecursiveUnion { base, .. } => output_types(base),
        Rel::WorkTable { types, .. } => types.clone(),
        Rel::With { body, .. } => output_types(body),
        Rel::CteScan(s) => s.types.clone(),
        Rel::Series { .. } => vec![SqlType::Int8],
    }
}
