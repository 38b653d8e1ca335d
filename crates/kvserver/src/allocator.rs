//! The allocator: what a range's replica set should become, given a view
//! of the cluster's stores ([`StorePool`]).
//!
//! [`decide`] is a pure function of the descriptor, the stores and the
//! settings, so it is tested without a cluster. In order, it:
//! 1. finishes a half-done change (leaves a joint configuration, removes a
//!    stray learner);
//! 2. adds a replica when the range has fewer voters than it needs;
//! 3. replaces a voter on a store dead for longer than
//!    `server.time_until_store_dead` (one joint step: the new voter in,
//!    the dead one out);
//! 4. removes a voter when there are too many (never the leaseholder's; the
//!    one whose loss hurts locality diversity least, then the one on the
//!    fullest store);
//! 5. rebalances by range count: moves a replica from a store well above
//!    the mean onto one well below it (add first, then remove);
//! 6. balances leases: moves the lease (with Raft leadership) to the voter
//!    whose store holds the fewest when the leaseholder's holds two more
//!    and is above the mean.
//!
//! Candidates for a new replica are live stores without a replica of the
//! range, ranked by locality diversity against the existing replicas
//! first (a new region beats a new zone beats the same zone), then by
//! fewest ranges.

use std::time::Duration;

use tardigrade_encoding::keys;
use tardigrade_hlc::Timestamp;
use tardigrade_kvpb::zone::{ConstraintConjunction, ZoneConfig};
use tardigrade_kvpb::{NodeId, RangeDescriptor, ReplicaId, ReplicaType, StoreId};

/// Replication settings (cluster settings in CockroachDB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationSettings {
    /// Voters per range (default 3).
    pub num_replicas: usize,
    /// Voters for ranges holding meta or system keys when enough stores
    /// exist (default 5).
    pub num_replicas_system: usize,
    /// `server.time_until_store_dead`: a store whose liveness expired this
    /// long ago is dead and its replicas are replaced (default 5 min).
    pub time_until_store_dead: Duration,
    /// Rebalance when a store holds at least this many more ranges than
    /// another candidate and is above the mean (default 2).
    pub rebalance_threshold: u64,
    /// How often the replicate queue visits the store's ranges.
    pub queue_interval: Duration,
    /// Move leases (with Raft leadership) toward stores holding fewer
    /// (default on). It also lets range-count rebalancing move replicas off
    /// the store that held every lease (the leaseholder's replica is never
    /// removed).
    pub lease_rebalancing: bool,
    /// Every replica is checked against its range's meta record at least
    /// this often (default 10 min). A follower, to find out it was removed
    /// even when nothing about it looks orphaned (a replica removed while it
    /// was quiesced and cut off neither ticks nor campaigns, and no one
    /// tells it); the leader, to rewrite a record that missed its last
    /// replica change (the change and the record are written separately,
    /// and the leader that made the change may have died in between).
    pub meta_check_interval: Duration,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            num_replicas: 3,
            num_replicas_system: 5,
            time_until_store_dead: Duration::from_secs(300),
            rebalance_threshold: 2,
            queue_interval: Duration::from_secs(3),
            lease_rebalancing: true,
            meta_check_interval: Duration::from_secs(600),
        }
    }
}

impl ReplicationSettings {
    /// Refuses replication factors that make no sense: 0, and 2 (a
    /// two-replica range cannot lose either replica, so it is strictly worse
    /// than one).
    pub fn validate(&self) -> Result<(), String> {
        for (name, n) in [
            ("num_replicas", self.num_replicas),
            ("num_replicas_system", self.num_replicas_system),
        ] {
            match n {
                0 => return Err(format!("{name} must be at least 1")),
                2 => {
                    return Err(format!(
                        "{name} = 2 is refused: two replicas survive no failure; use 1 or 3"
                    ));
                }
                n if n > 9 => return Err(format!("{name} = {n} is above the maximum of 9")),
                _ => {}
            }
        }
        if self.queue_interval.is_zero() {
            return Err("the replicate queue interval must be positive".into());
        }
        if self.time_until_store_dead.is_zero() {
            return Err("server.time_until_store_dead must be positive".into());
        }
        Ok(())
    }
}

/// What the cluster knows about one store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreDetail {
    pub node_id: NodeId,
    pub store_id: StoreId,
    /// Locality tiers, most significant first (`region`, `zone`).
    pub locality: Vec<(String, String)>,
    pub range_count: u64,
    pub lease_count: u64,
    /// When the node's liveness record expires (`Timestamp::ZERO` if it has
    /// none yet).
    pub liveness_expiration: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreStatus {
    Live,
    /// Liveness expired, but not for `time_until_store_dead` yet.
    Suspect,
    Dead,
}

impl StoreDetail {
    pub fn status(&self, now: Timestamp, time_until_dead: Duration) -> StoreStatus {
        if now < self.liveness_expiration {
            StoreStatus::Live
        } else if self.liveness_expiration.is_zero()
            || now < self.liveness_expiration.add_duration(time_until_dead)
        {
            StoreStatus::Suspect
        } else {
            StoreStatus::Dead
        }
    }
}

/// The cluster as the allocator sees it; implemented by the server from node
/// descriptors, liveness records and per-store capacity records.
pub trait StorePool: Send + Sync {
    /// Every store of the cluster (live or not) with its last known figures.
    fn stores(&self) -> Vec<StoreDetail>;
    /// The present, on the cluster's clock.
    fn now(&self) -> Timestamp;
}

/// What to do with a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    LeaveJoint,
    RemoveLearner(ReplicaId),
    /// Add a voter (under-replicated).
    Add {
        node_id: NodeId,
        store_id: StoreId,
    },
    /// Add a voter and remove `remove` in the same joint step (a dead
    /// store's replica, or a rebalance away from a full store).
    Replace {
        node_id: NodeId,
        store_id: StoreId,
        remove: ReplicaId,
        rebalance: bool,
    },
    Remove(ReplicaId),
    /// Move the lease (and Raft leadership) to this voter: its store holds
    /// well fewer leases than the leaseholder's.
    TransferLease(ReplicaId),
}

impl Action {
    /// A move for balance only (held back while published counts settle).
    pub fn is_rebalance(&self) -> bool {
        matches!(
            self,
            Action::Replace {
                rebalance: true,
                ..
            } | Action::TransferLease(_)
        )
    }
}

/// Whether a range holds meta or system keys (replicated more widely).
pub fn is_system_range(desc: &RangeDescriptor) -> bool {
    desc.start_key.as_slice() < keys::SYSTEM_MAX
}

/// How many voters a range of zone `conf` should have when `stores`
/// stores exist: the zone's `num_voters` if set, else `num_replicas`,
/// capped by the number of stores, and odd when capped.
/// TODO(issue 14): non-voting replicas; until they exist, a zone's
/// replicas beyond `num_voters` are not placed at all.
pub fn needed_voters(conf: &ZoneConfig, stores: usize) -> usize {
    let target = conf.num_voters.or(conf.num_replicas).unwrap_or(3).max(1) as usize;
    let mut need = target.min(stores).max(1);
    if need < target && need.is_multiple_of(2) {
        need -= 1;
    }
    need
}

/// The zone of `desc` when nothing but the built-in zones apply (tests
/// and tools without a cluster).
pub fn builtin_zone(desc: &RangeDescriptor, s: &ReplicationSettings) -> ZoneConfig {
    crate::span_config::SpanConfigSet::builtin(s, tardigrade_kvpb::zone::DEFAULT_RANGE_MAX_BYTES)
        .config_for(desc)
}

/// How a zone's constraints judge replica placements.
struct Placement<'a> {
    /// Conjunctions every replica must satisfy.
    all: Vec<&'a ConstraintConjunction>,
    /// Conjunctions that a number of replicas must satisfy.
    counted: Vec<&'a ConstraintConjunction>,
    /// Replicas beyond the counted ones, placed freely.
    free_slots: usize,
}

impl<'a> Placement<'a> {
    fn new(conf: &'a ZoneConfig, need: usize) -> Placement<'a> {
        // Every replica votes (no non-voting replicas yet): a zone with
        // `num_voters` places them by its voter constraints when it has
        // any.
        let voter = conf
            .voter_constraints
            .as_deref()
            .filter(|v| conf.num_voters.is_some() && !v.is_empty());
        let list = voter.unwrap_or(conf.constraints.as_deref().unwrap_or(&[]));
        let (all, counted): (Vec<_>, Vec<_>) = list.iter().partition(|c| c.num_replicas == 0);
        let counted_total: usize = counted.iter().map(|c| c.num_replicas as usize).sum();
        Placement {
            all,
            counted,
            free_slots: need.saturating_sub(counted_total),
        }
    }

    fn allowed(&self, loc: &[(String, String)]) -> bool {
        self.all.iter().all(|c| c.matches(loc))
    }

    /// Assigns each replica (by locality) to the first counted conjunction
    /// it matches that has room; the rest are unassigned. Returns how many
    /// each conjunction got and which replicas went unassigned.
    fn assign(&self, locs: &[&[(String, String)]]) -> (Vec<usize>, Vec<usize>) {
        let mut filled = vec![0usize; self.counted.len()];
        let mut unassigned = Vec::new();
        for (i, loc) in locs.iter().enumerate() {
            let slot = self
                .counted
                .iter()
                .enumerate()
                .position(|(j, c)| filled[j] < c.num_replicas as usize && c.matches(loc));
            match slot {
                Some(j) => filled[j] += 1,
                None => unassigned.push(i),
            }
        }
        (filled, unassigned)
    }

    /// How a new replica on `loc` next to `existing` scores: `None` if it
    /// may not go there, 1 if it fills a counted conjunction short of
    /// replicas, 0 otherwise.
    fn score(&self, existing: &[&[(String, String)]], loc: &[(String, String)]) -> Option<u8> {
        if !self.allowed(loc) {
            return None;
        }
        let (filled, unassigned) = self.assign(existing);
        let fills = self
            .counted
            .iter()
            .enumerate()
            .any(|(j, c)| filled[j] < c.num_replicas as usize && c.matches(loc));
        if fills {
            Some(1)
        } else if unassigned.len() < self.free_slots {
            Some(0)
        } else {
            None
        }
    }

    /// The replicas (indexes into `locs`) placed against the constraints:
    /// on a disallowed store, or unassigned beyond the free slots while a
    /// counted conjunction is short.
    fn misplaced(&self, locs: &[&[(String, String)]]) -> Vec<usize> {
        let mut out: Vec<usize> = (0..locs.len())
            .filter(|i| !self.allowed(locs[*i]))
            .collect();
        let (filled, unassigned) = self.assign(locs);
        let short = self
            .counted
            .iter()
            .enumerate()
            .any(|(j, c)| filled[j] < c.num_replicas as usize);
        if short && unassigned.len() > self.free_slots {
            for i in unassigned {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        out
    }
}

/// The lease preference a range's lease should follow: the first one some
/// live voter satisfies (`None` without preferences or when no voter
/// satisfies any).
fn preferred<'a>(
    conf: &'a ZoneConfig,
    voter_locs: &[&[(String, String)]],
) -> Option<&'a [tardigrade_kvpb::zone::Constraint]> {
    conf.lease_preferences
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .find(|p| voter_locs.iter().any(|l| p.iter().all(|c| c.matches(l))))
        .map(Vec::as_slice)
}

/// How different two localities are: 1.0 when they differ in the first
/// tier, less the deeper the first difference, 0 when equal.
fn diversity(a: &[(String, String)], b: &[(String, String)]) -> f64 {
    let n = a.len().max(b.len());
    if n == 0 {
        return 0.0;
    }
    for i in 0..n {
        if a.get(i) != b.get(i) {
            return (n - i) as f64 / n as f64;
        }
    }
    0.0
}

fn set_diversity(localities: &[&[(String, String)]]) -> f64 {
    let mut sum = 0.0;
    for (i, a) in localities.iter().enumerate() {
        for b in &localities[i + 1..] {
            sum += diversity(a, b);
        }
    }
    sum
}

/// Decides the next step for `desc`, whose leaseholder is replica
/// `leaseholder` and whose zone is `conf` (every field set).
pub fn decide(
    desc: &RangeDescriptor,
    leaseholder: ReplicaId,
    stores: &[StoreDetail],
    now: Timestamp,
    s: &ReplicationSettings,
    conf: &ZoneConfig,
) -> Action {
    if crate::replica_change::is_joint(desc) {
        return Action::LeaveJoint;
    }
    if let Some(l) = desc
        .replicas
        .iter()
        .find(|r| r.kind == ReplicaType::Learner)
    {
        return Action::RemoveLearner(l.replica_id);
    }
    let detail = |store_id: StoreId| stores.iter().find(|d| d.store_id == store_id);
    let status = |store_id: StoreId| {
        detail(store_id).map_or(StoreStatus::Suspect, |d| {
            d.status(now, s.time_until_store_dead)
        })
    };
    let voters: Vec<_> = desc.voters().copied().collect();
    let need = needed_voters(conf, stores.len());
    let placement = Placement::new(conf, need);
    let locality_of = |store_id: StoreId| -> &[(String, String)] {
        detail(store_id).map_or(&[], |d| d.locality.as_slice())
    };
    // The best live store without a replica, scored against `existing`:
    // constraints first, then locality diversity, then fewest ranges.
    let candidate = |existing: &[StoreId]| -> Option<&StoreDetail> {
        let existing_locs: Vec<&[(String, String)]> =
            existing.iter().map(|e| locality_of(*e)).collect();
        stores
            .iter()
            .filter(|d| d.status(now, s.time_until_store_dead) == StoreStatus::Live)
            .filter(|d| !desc.replicas.iter().any(|r| r.store_id == d.store_id))
            .filter(|d| !desc.replicas.iter().any(|r| r.node_id == d.node_id))
            .filter_map(|d| {
                let fit = placement.score(&existing_locs, &d.locality)?;
                let div: f64 = existing_locs
                    .iter()
                    .map(|e| diversity(&d.locality, e))
                    .sum();
                Some((d, fit, div))
            })
            .max_by(|(a, fa, da), (b, fb, db)| {
                fa.cmp(fb)
                    .then(da.total_cmp(db))
                    .then(b.range_count.cmp(&a.range_count))
                    .then(b.store_id.cmp(&a.store_id))
            })
            .map(|(d, ..)| d)
    };
    let dead: Vec<_> = voters
        .iter()
        .filter(|r| status(r.store_id) == StoreStatus::Dead)
        .collect();
    let healthy: Vec<StoreId> = voters
        .iter()
        .filter(|r| status(r.store_id) != StoreStatus::Dead)
        .map(|r| r.store_id)
        .collect();
    if voters.len() < need {
        if let Some(c) = candidate(&healthy) {
            return Action::Add {
                node_id: c.node_id,
                store_id: c.store_id,
            };
        }
        return Action::None;
    }
    if let Some(d) = dead.first() {
        if let Some(c) = candidate(&healthy) {
            return Action::Replace {
                node_id: c.node_id,
                store_id: c.store_id,
                remove: d.replica_id,
                rebalance: false,
            };
        }
        if voters.len() > need && d.replica_id != leaseholder {
            return Action::Remove(d.replica_id);
        }
        return Action::None;
    }
    let voter_locs: Vec<&[(String, String)]> =
        voters.iter().map(|r| locality_of(r.store_id)).collect();
    let misplaced: Vec<ReplicaId> = placement
        .misplaced(&voter_locs)
        .into_iter()
        .map(|i| voters[i].replica_id)
        .collect();
    if voters.len() > need {
        // Remove a voter placed against the constraints, else the one
        // whose loss keeps the most diversity; among equals, prefer
        // unhealthy stores, then the fullest.
        let best = voters
            .iter()
            .filter(|r| r.replica_id != leaseholder)
            .filter(|r| misplaced.is_empty() || misplaced.contains(&r.replica_id))
            .map(|r| {
                let rest: Vec<&[(String, String)]> = voters
                    .iter()
                    .filter(|o| o.replica_id != r.replica_id)
                    .map(|o| locality_of(o.store_id))
                    .collect();
                let live = status(r.store_id) == StoreStatus::Live;
                let ranges = detail(r.store_id).map_or(0, |d| d.range_count);
                (r, set_diversity(&rest), live, ranges)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)).then(a.3.cmp(&b.3)));
        if let Some((r, ..)) = best {
            return Action::Remove(r.replica_id);
        }
        return Action::None;
    }
    // Rebalance by range count, and off stores the constraints exclude:
    // only with every voter live.
    if voters
        .iter()
        .any(|r| status(r.store_id) != StoreStatus::Live)
    {
        return Action::None;
    }
    // The leaseholder's replica last: moving another fixes as much.
    let bad = misplaced
        .iter()
        .copied()
        .find(|r| *r != leaseholder)
        .or(misplaced.first().copied());
    if let Some(bad) = bad {
        if bad == leaseholder {
            // The leaseholder's replica is never removed: hand the lease
            // to a well-placed voter first.
            let to = voters
                .iter()
                .find(|r| !misplaced.contains(&r.replica_id) && r.kind == ReplicaType::Voter);
            return to.map_or(Action::None, |r| Action::TransferLease(r.replica_id));
        }
        let others: Vec<StoreId> = voters
            .iter()
            .filter(|r| r.replica_id != bad)
            .map(|r| r.store_id)
            .collect();
        if let Some(c) = candidate(&others) {
            return Action::Replace {
                node_id: c.node_id,
                store_id: c.store_id,
                remove: bad,
                rebalance: false,
            };
        }
    }
    let live: Vec<&StoreDetail> = stores
        .iter()
        .filter(|d| d.status(now, s.time_until_store_dead) == StoreStatus::Live)
        .collect();
    if live.is_empty() {
        return Action::None;
    }
    let mean = live.iter().map(|d| d.range_count as f64).sum::<f64>() / live.len() as f64;
    let fullest = voters
        .iter()
        .filter(|r| r.replica_id != leaseholder)
        .filter_map(|r| detail(r.store_id).map(|d| (r, d)))
        .filter(|(_, d)| d.range_count as f64 > mean)
        .max_by_key(|(_, d)| (d.range_count, d.store_id));
    let Some((from, from_detail)) = fullest else {
        return balance_leases(desc, leaseholder, &live, &voters, s, conf, stores);
    };
    let others: Vec<StoreId> = voters
        .iter()
        .filter(|r| r.replica_id != from.replica_id)
        .map(|r| r.store_id)
        .collect();
    let Some(to) = candidate(&others) else {
        return balance_leases(desc, leaseholder, &live, &voters, s, conf, stores);
    };
    // The move must keep every counted conjunction `from` helps satisfy,
    // and a voter where the lease prefers to be.
    let lease_pref = preferred(conf, &voter_locs);
    let fits_pref =
        |l: &[(String, String)]| lease_pref.is_some_and(|p| p.iter().all(|c| c.matches(l)));
    let other_fits = voters
        .iter()
        .filter(|r| r.replica_id != from.replica_id)
        .any(|r| fits_pref(locality_of(r.store_id)));
    let keeps_constraints = placement
        .counted
        .iter()
        .all(|c| !c.matches(&from_detail.locality) || c.matches(&to.locality))
        && (!fits_pref(&from_detail.locality) || other_fits || fits_pref(&to.locality));
    let div = |store: &[(String, String)]| -> f64 {
        others
            .iter()
            .map(|o| diversity(store, locality_of(*o)))
            .sum()
    };
    if (to.range_count as f64) < mean
        && from_detail.range_count >= to.range_count + s.rebalance_threshold
        && div(&to.locality) >= div(&from_detail.locality)
        && keeps_constraints
    {
        return Action::Replace {
            node_id: to.node_id,
            store_id: to.store_id,
            remove: from.replica_id,
            rebalance: true,
        };
    }
    balance_leases(desc, leaseholder, &live, &voters, s, conf, stores)
}

/// Follows the zone's lease preferences: moves the lease to a live voter
/// satisfying the first preference some voter satisfies, when the
/// leaseholder does not. Otherwise balances: moves the lease to the voter
/// (among those satisfying that preference) whose store holds the fewest
/// leases when the leaseholder's store is above the mean and at least two
/// above it.
fn balance_leases(
    desc: &RangeDescriptor,
    leaseholder: ReplicaId,
    live: &[&StoreDetail],
    voters: &[tardigrade_kvpb::ReplicaDescriptor],
    s: &ReplicationSettings,
    conf: &ZoneConfig,
    stores: &[StoreDetail],
) -> Action {
    let Some(holder) = desc.replica(leaseholder) else {
        return Action::None;
    };
    let loc = |store_id: StoreId| -> &[(String, String)] {
        stores
            .iter()
            .find(|d| d.store_id == store_id)
            .map_or(&[], |d| d.locality.as_slice())
    };
    let is_live = |store_id: StoreId| live.iter().any(|d| d.store_id == store_id);
    let live_voters: Vec<_> = voters
        .iter()
        .filter(|r| r.kind == ReplicaType::Voter && is_live(r.store_id))
        .collect();
    let live_locs: Vec<&[(String, String)]> = live_voters.iter().map(|r| loc(r.store_id)).collect();
    let pref = preferred(conf, &live_locs);
    let fits = |store_id: StoreId| pref.is_none_or(|p| p.iter().all(|c| c.matches(loc(store_id))));
    if !fits(holder.store_id) {
        // Among the voters that fit, the one on the store with the fewest
        // leases.
        let to = live_voters
            .iter()
            .filter(|r| fits(r.store_id))
            .min_by_key(|r| {
                let leases = live
                    .iter()
                    .find(|d| d.store_id == r.store_id)
                    .map_or(0, |d| d.lease_count);
                (leases, r.store_id)
            });
        if let Some(r) = to {
            return Action::TransferLease(r.replica_id);
        }
    }
    if !s.lease_rebalancing {
        return Action::None;
    }
    let count = |store_id: StoreId| {
        live.iter()
            .find(|d| d.store_id == store_id)
            .map(|d| d.lease_count)
    };
    let Some(mine) = count(holder.store_id) else {
        return Action::None;
    };
    if live.is_empty() {
        return Action::None;
    }
    let mean = live.iter().map(|d| d.lease_count as f64).sum::<f64>() / live.len() as f64;
    let best = voters
        .iter()
        .filter(|r| r.replica_id != leaseholder && r.kind == ReplicaType::Voter)
        .filter(|r| fits(r.store_id))
        .filter_map(|r| count(r.store_id).map(|c| (r, c)))
        .min_by_key(|(r, c)| (*c, r.store_id));
    match best {
        Some((r, c)) if (mine as f64) > mean && (c as f64) < mean && mine >= c + 2 => {
            Action::TransferLease(r.replica_id)
        }
        _ => Action::None,
    }
}

#[cfg(test)]
mod tests {
    use tardigrade_kvpb::ReplicaDescriptor;

    use super::*;

    fn decide_builtin(
        desc: &RangeDescriptor,
        leaseholder: ReplicaId,
        stores: &[StoreDetail],
        now: Timestamp,
        s: &ReplicationSettings,
    ) -> Action {
        decide(desc, leaseholder, stores, now, s, &builtin_zone(desc, s))
    }

    fn store(id: u64, region: &str, zone: &str, ranges: u64, exp: i64) -> StoreDetail {
        StoreDetail {
            node_id: id,
            store_id: id,
            locality: vec![
                ("region".into(), region.into()),
                ("zone".into(), zone.into()),
            ],
            range_count: ranges,
            lease_count: 0,
            liveness_expiration: Timestamp::new(exp, 0),
        }
    }

    fn desc(stores: &[u64]) -> RangeDescriptor {
        RangeDescriptor {
            range_id: 7,
            start_key: b"\x90".to_vec(),
            end_key: b"\x95".to_vec(),
            replicas: stores
                .iter()
                .map(|s| ReplicaDescriptor {
                    node_id: *s,
                    store_id: *s,
                    replica_id: *s,
                    kind: ReplicaType::Voter,
                })
                .collect(),
            next_replica_id: 10,
            generation: 1,
        }
    }

    const NOW: i64 = 1_000_000_000_000;
    const LIVE: i64 = NOW + 1_000_000_000;
    const DEAD: i64 = NOW - 600_000_000_000;
    const SUSPECT: i64 = NOW - 1_000_000_000;

    fn now() -> Timestamp {
        Timestamp::new(NOW, 0)
    }

    #[test]
    fn settings_refuse_two_replicas() {
        let mut s = ReplicationSettings::default();
        assert!(s.validate().is_ok());
        s.num_replicas = 2;
        assert!(s.validate().unwrap_err().contains("refused"));
        s.num_replicas = 0;
        assert!(s.validate().is_err());
        s.num_replicas = 1;
        assert!(s.validate().is_ok());
    }

    #[test]
    fn needed_voters_is_capped_and_odd() {
        let s = ReplicationSettings::default();
        let d = desc(&[1]);
        let z = builtin_zone(&d, &s);
        assert_eq!(needed_voters(&z, 1), 1);
        assert_eq!(needed_voters(&z, 2), 1);
        assert_eq!(needed_voters(&z, 3), 3);
        assert_eq!(needed_voters(&z, 7), 3);
        let mut sys = d.clone();
        sys.start_key = Vec::new();
        let z = builtin_zone(&sys, &s);
        assert_eq!(needed_voters(&z, 4), 3);
        assert_eq!(needed_voters(&z, 5), 5);
    }

    #[test]
    fn upreplication_prefers_new_regions_then_fewer_ranges() {
        let s = ReplicationSettings::default();
        let stores = vec![
            store(1, "eu", "a", 5, LIVE),
            store(2, "eu", "b", 1, LIVE),
            store(3, "us", "a", 9, LIVE),
            store(4, "us", "b", 3, LIVE),
            store(5, "ap", "a", 0, DEAD),
        ];
        let a = decide_builtin(&desc(&[1]), 1, &stores, now(), &s);
        assert_eq!(
            a,
            Action::Add {
                node_id: 4,
                store_id: 4
            },
            "another region, the emptier of its stores; never the dead one"
        );
        let a = decide_builtin(&desc(&[1, 4]), 1, &stores, now(), &s);
        // eu/b and us/a are equally diverse against {eu/a, us/b}; fewer ranges wins.
        assert_eq!(
            a,
            Action::Add {
                node_id: 2,
                store_id: 2
            }
        );
    }

    #[test]
    fn dead_replicas_are_replaced_suspect_ones_are_not() {
        let s = ReplicationSettings::default();
        let mut stores = vec![
            store(1, "r", "a", 1, LIVE),
            store(2, "r", "a", 1, LIVE),
            store(3, "r", "a", 1, SUSPECT),
            store(4, "r", "a", 0, LIVE),
        ];
        assert_eq!(
            decide_builtin(&desc(&[1, 2, 3]), 1, &stores, now(), &s),
            Action::None
        );
        stores[2].liveness_expiration = Timestamp::new(DEAD, 0);
        assert_eq!(
            decide_builtin(&desc(&[1, 2, 3]), 1, &stores, now(), &s),
            Action::Replace {
                node_id: 4,
                store_id: 4,
                remove: 3,
                rebalance: false
            }
        );
    }

    #[test]
    fn removal_keeps_diversity_and_spares_the_leaseholder() {
        let s = ReplicationSettings::default();
        let stores = vec![
            store(1, "eu", "a", 1, LIVE),
            store(2, "eu", "a", 7, LIVE),
            store(3, "us", "a", 1, LIVE),
            store(4, "ap", "a", 1, LIVE),
        ];
        // 1 and 2 share a zone: one of them goes; 1 holds the lease.
        assert_eq!(
            decide_builtin(&desc(&[1, 2, 3, 4]), 1, &stores, now(), &s),
            Action::Remove(2)
        );
        assert_eq!(
            decide_builtin(&desc(&[1, 2, 3, 4]), 2, &stores, now(), &s),
            Action::Remove(1)
        );
    }

    #[test]
    fn leases_move_off_a_store_holding_too_many() {
        let s = ReplicationSettings {
            lease_rebalancing: true,
            ..ReplicationSettings::default()
        };
        let mut stores = vec![
            store(1, "r", "a", 5, LIVE),
            store(2, "r", "a", 5, LIVE),
            store(3, "r", "a", 5, LIVE),
        ];
        stores[0].lease_count = 5;
        assert_eq!(
            decide_builtin(&desc(&[1, 2, 3]), 1, &stores, now(), &s),
            Action::TransferLease(2)
        );
        stores[0].lease_count = 2;
        stores[1].lease_count = 1;
        stores[2].lease_count = 2;
        assert_eq!(
            decide_builtin(&desc(&[1, 2, 3]), 1, &stores, now(), &s),
            Action::None
        );
    }

    #[test]
    fn rebalances_from_full_stores_to_empty_ones() {
        let s = ReplicationSettings::default();
        let stores = vec![
            store(1, "r", "a", 10, LIVE),
            store(2, "r", "a", 10, LIVE),
            store(3, "r", "a", 10, LIVE),
            store(4, "r", "a", 0, LIVE),
        ];
        assert_eq!(
            decide_builtin(&desc(&[1, 2, 3]), 1, &stores, now(), &s),
            Action::Replace {
                node_id: 4,
                store_id: 4,
                remove: 3,
                rebalance: true
            }
        );
        let balanced = vec![
            store(1, "r", "a", 8, LIVE),
            store(2, "r", "a", 7, LIVE),
            store(3, "r", "a", 8, LIVE),
            store(4, "r", "a", 7, LIVE),
        ];
        assert_eq!(
            decide_builtin(&desc(&[1, 2, 3]), 1, &balanced, now(), &s),
            Action::None
        );
    }

    fn zone(fields: &[(&str, &str)]) -> ZoneConfig {
        let mut z = ZoneConfig::default();
        for (k, v) in fields {
            z.set_field(k, Some(v)).expect("zone field");
        }
        z.inherit_from(&ZoneConfig::builtin_default(3, 512 << 20));
        z
    }

    fn regions() -> Vec<StoreDetail> {
        vec![
            store(1, "eu", "a", 0, LIVE),
            store(2, "eu", "b", 0, LIVE),
            store(3, "us", "a", 0, LIVE),
            store(4, "us", "b", 0, LIVE),
            store(5, "ap", "a", 0, LIVE),
            store(6, "us", "c", 0, LIVE),
        ]
    }

    #[test]
    fn required_and_prohibited_constraints_limit_candidates() {
        let s = ReplicationSettings::default();
        let stores = regions();
        let only_us = zone(&[("constraints", "[+region=us]")]);
        let a = decide(&desc(&[3]), 3, &stores, now(), &s, &only_us);
        assert_eq!(
            a,
            Action::Add {
                node_id: 4,
                store_id: 4
            },
            "another us store, not a more diverse one"
        );
        let no_eu = zone(&[("constraints", "[-region=eu]")]);
        let a = decide(&desc(&[3, 5]), 3, &stores, now(), &s, &no_eu);
        assert_eq!(
            a,
            Action::Add {
                node_id: 4,
                store_id: 4
            }
        );
        // Nowhere left to go: nothing, rather than a store the zone forbids.
        let a = decide(
            &desc(&[3, 4, 6]),
            3,
            &stores,
            now(),
            &s,
            &zone(&[("constraints", "[+region=us]"), ("num_replicas", "5")]),
        );
        assert_eq!(a, Action::None);
    }

    #[test]
    fn per_count_constraints_are_filled_first() {
        let s = ReplicationSettings::default();
        let stores = regions();
        let two_eu = zone(&[("constraints", "{\"+region=eu\": 2}")]);
        let a = decide(&desc(&[3]), 3, &stores, now(), &s, &two_eu);
        assert_eq!(
            a,
            Action::Add {
                node_id: 1,
                store_id: 1
            }
        );
        let a = decide(&desc(&[3, 1]), 3, &stores, now(), &s, &two_eu);
        assert_eq!(
            a,
            Action::Add {
                node_id: 2,
                store_id: 2
            }
        );
        // A replica outside the counted conjunctions makes room for one
        // inside (the leaseholder's stays).
        let eu_us = zone(&[
            ("constraints", "{\"+region=eu\": 2}"),
            ("lease_preferences", "[[+region=us]]"),
        ]);
        let a = decide(&desc(&[1, 5, 3]), 1, &stores, now(), &s, &eu_us);
        assert_eq!(
            a,
            Action::Replace {
                node_id: 2,
                store_id: 2,
                remove: 5,
                rebalance: false
            }
        );
        let a = decide(&desc(&[1, 3, 4]), 3, &stores, now(), &s, &eu_us);
        assert_eq!(
            a,
            Action::Replace {
                node_id: 2,
                store_id: 2,
                remove: 4,
                rebalance: false
            },
            "not the leaseholder's, which the lease preference wants"
        );
        // Fully constrained: the third replica must be in ap.
        let full = zone(&[("constraints", "{\"+region=eu\": 2, \"+region=ap\": 1}")]);
        let a = decide(&desc(&[1, 2]), 1, &stores, now(), &s, &full);
        assert_eq!(
            a,
            Action::Add {
                node_id: 5,
                store_id: 5
            }
        );
    }

    #[test]
    fn replicas_against_the_constraints_move() {
        let s = ReplicationSettings::default();
        let stores = regions();
        let only_us = zone(&[("constraints", "[+region=us]")]);
        // The eu replica is replaced by the remaining us store.
        let a = decide(&desc(&[3, 4, 1]), 3, &stores, now(), &s, &only_us);
        assert_eq!(
            a,
            Action::Replace {
                node_id: 6,
                store_id: 6,
                remove: 1,
                rebalance: false
            }
        );
        // The leaseholder is misplaced: its lease moves first.
        let a = decide(&desc(&[1, 3, 4]), 1, &stores, now(), &s, &only_us);
        assert_eq!(a, Action::TransferLease(3));
        // Too many replicas: the misplaced one goes, even if it adds diversity.
        let a = decide(&desc(&[3, 4, 6, 5]), 3, &stores, now(), &s, &only_us);
        assert_eq!(a, Action::Remove(5));
    }

    #[test]
    fn the_lease_follows_the_first_satisfiable_preference() {
        let s = ReplicationSettings::default();
        let stores = regions();
        let prefer_us = zone(&[("lease_preferences", "[[+region=ap], [+region=us]]")]);
        let a = decide(&desc(&[1, 3, 2]), 1, &stores, now(), &s, &prefer_us);
        assert_eq!(
            a,
            Action::TransferLease(3),
            "no voter in ap: the second preference"
        );
        let a = decide(&desc(&[1, 3, 2]), 3, &stores, now(), &s, &prefer_us);
        assert_eq!(a, Action::None, "already there");
    }
}

#[cfg(test)]
mod voter_tests {
    use super::*;
    use tardigrade_kvpb::ReplicaDescriptor;

    #[test]
    fn voter_constraints_place_the_voters() {
        let s = ReplicationSettings::default();
        let regions = ["eu", "us", "ap", "eu", "us"];
        let stores: Vec<StoreDetail> = (1..=5u64)
            .map(|i| StoreDetail {
                node_id: i,
                store_id: i,
                locality: vec![
                    ("region".into(), regions[(i - 1) as usize].into()),
                    ("zone".into(), format!("z{i}")),
                ],
                range_count: 5,
                lease_count: 1,
                liveness_expiration: Timestamp::new(i64::MAX / 2, 0),
            })
            .collect();
        let desc = RangeDescriptor {
            range_id: 4,
            start_key: vec![237],
            end_key: vec![238],
            replicas: [(1u64, 1u64), (5, 2), (4, 3)]
                .iter()
                .map(|(n, r)| ReplicaDescriptor {
                    node_id: *n,
                    store_id: *n,
                    replica_id: *r,
                    kind: ReplicaType::Voter,
                })
                .collect(),
            next_replica_id: 4,
            generation: 10,
        };
        let mut z = ZoneConfig::default();
        for (k, v) in [
            ("num_replicas", "5"),
            ("num_voters", "3"),
            (
                "constraints",
                "{\"+region=ap\": 1, \"+region=eu\": 1, \"+region=us\": 1}",
            ),
            ("voter_constraints", "[+region=us]"),
            ("lease_preferences", "[[+region=us]]"),
        ] {
            z.set_field(k, Some(v)).expect("field");
        }
        z.inherit_from(&ZoneConfig::builtin_default(3, 512 << 20));
        let a = decide(&desc, 1, &stores, Timestamp::new(1000, 0), &s, &z);
        assert_eq!(
            a,
            Action::Replace {
                node_id: 2,
                store_id: 2,
                remove: 3,
                rebalance: false
            },
            "an eu voter makes way for the other us store"
        );
        // The leaseholder (ap) is the one against the constraints: its
        // lease goes first.
        let mut d2 = desc.clone();
        for (i, n) in [1u64, 3, 4].iter().enumerate() {
            d2.replicas[i].node_id = *n;
            d2.replicas[i].store_id = *n;
        }
        let mut z2 = ZoneConfig::default();
        z2.set_field(
            "constraints",
            Some("{\"+region=eu\": 2, \"+region=us\": 1}"),
        )
        .expect("field");
        z2.set_field("lease_preferences", Some("[[+region=us]]"))
            .expect("field");
        z2.inherit_from(&ZoneConfig::builtin_default(3, 512 << 20));
        let a = decide(&d2, 2, &stores, Timestamp::new(1000, 0), &s, &z2);
        assert_eq!(a, Action::TransferLease(1));
    }
}
