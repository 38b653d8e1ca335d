//! Zone configurations in SQL, as CockroachDB has them: `ALTER {RANGE
//! default|meta|system | DATABASE d | TABLE t | INDEX t@i} CONFIGURE ZONE
//! USING field = value, …` (or `… DISCARD`), `SHOW ZONE CONFIGURATION FROM
//! …` and `SHOW [ALL] ZONE CONFIGURATIONS`; and the span configs the KV
//! layer acts on ([`tardigrade_kvpb::zone`]).
//!
//! ## Storage
//!
//! | key                                       | value                                  |
//! |-------------------------------------------|----------------------------------------|
//! | `/System/"sql-zone"/<id>`                 | the zone of a database or table, or of a named range (pseudo-ids: default 0, meta 16, system 17) |
//! | `/System/"sql-zone"/<table id>/<index id>`| the zone of an index                   |
//! | `/System/"span-cfg/"<start key>`          | a span config (written here, read by KV)|
//! | `/System/"span-cfg-default"`              | `RANGE default`'s zone, for KV          |
//!
//! Zones hold only the fields set on them; the rest inherit: index →
//! table → database → `RANGE default` → the built-in defaults. Every
//! table and sequence has span configs (written when it is created, in
//! the same transaction): its span with its zone resolved up to its
//! database, with the spans of indexes that have zones of their own cut
//! out, so that the split queue gives each table its own ranges. A change
//! to a database's zone rewrites the span configs of its tables; one to
//! `RANGE default` rewrites only its own record, which KV applies beneath
//! every other.
//!
//! A zone is validated with everything it inherits before it is written:
//! CockroachDB's checks (replica counts, byte limits, constraint counts)
//! and, on a cluster, that some node has every locality tier the
//! constraints name. Nothing is written when a check fails.
//!
//! TODO(issue 14): partitions; non-voting replicas (`num_voters` and
//! `voter_constraints` are stored and shown, every replica votes); zones
//! of indexes survive TRUNCATE and primary-key changes (they give indexes
//! new ids) only in CockroachDB.

use std::collections::HashMap;
use std::sync::Arc;

use tardigrade_encoding::keys;
use tardigrade_kv::Txn;
use tardigrade_kvpb::zone::{self, SpanConfig, ZONE_FIELDS, ZoneConfig};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, Value};

use super::{rows_output, table_and_index, text, text_columns};
use crate::catalog::{DescId, IndexId, TableDesc, kv_err};
use crate::node::{QueryOutput, SqlNode};
use crate::parse::{ZoneTarget, ZoneValue};
use crate::rowenc;

/// The pseudo-id of `RANGE default`.
const RANGE_DEFAULT: DescId = 0;
/// The pseudo-id of `RANGE meta`.
const RANGE_META: DescId = 16;
/// The pseudo-id of `RANGE system`.
const RANGE_SYSTEM: DescId = 17;

const ZONE_PREFIX: &[u8] = b"\x04sql-zone/";

pub(super) fn zone_key(id: DescId, index: Option<IndexId>) -> Vec<u8> {
    let mut k = ZONE_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    if let Some(i) = index {
        k.extend_from_slice(&i.to_be_bytes());
    }
    k
}

/// A zone configuration target resolved to ids.
#[derive(Clone, Debug)]
enum Target {
    /// `RANGE default|meta|system` (by pseudo-id).
    Range(DescId),
    Database {
        id: DescId,
        name: String,
    },
    Table(Arc<TableDesc>),
    Index(Arc<TableDesc>, IndexId),
}

impl Target {
    fn key(&self) -> Vec<u8> {
        match self {
            Target::Range(id) => zone_key(*id, None),
            Target::Database { id, .. } => zone_key(*id, None),
            Target::Table(t) => zone_key(t.id, None),
            Target::Index(t, i) => zone_key(t.id, Some(*i)),
        }
    }

    /// The name CockroachDB prints: `RANGE default`, `DATABASE d`, `TABLE
    /// t`, `INDEX t@i`.
    fn display(&self) -> String {
        match self {
            Target::Range(id) => format!("RANGE {}", range_name(*id)),
            Target::Database { name, .. } => format!("DATABASE {name}"),
            Target::Table(t) => format!("TABLE {}", t.name),
            Target::Index(t, i) => {
                let index = t
                    .index(*i)
                    .map_or_else(|| i.to_string(), |x| x.name.clone());
                format!("INDEX {}@{index}", t.name)
            }
        }
    }
}

fn range_name(id: DescId) -> &'static str {
    match id {
        RANGE_META => "meta",
        RANGE_SYSTEM => "system",
        _ => "default",
    }
}

/// The built-in zones beneath whatever users set: `RANGE default`'s
/// fields, and for `RANGE meta|system` five replicas and an hour of GC.
fn builtin(id: DescId) -> ZoneConfig {
    let mut z = match id {
        RANGE_META | RANGE_SYSTEM => ZoneConfig {
            num_replicas: Some(5),
            gc_ttl_seconds: Some(60 * 60),
            ..Default::default()
        },
        _ => ZoneConfig::default(),
    };
    z.inherit_from(&ZoneConfig::builtin_default(
        3,
        zone::DEFAULT_RANGE_MAX_BYTES,
    ));
    z
}

async fn read_zone(txn: &mut Txn, key: &[u8]) -> SqlResult<Option<ZoneConfig>> {
    match txn.get(key).await.map_err(kv_err)? {
        None => Ok(None),
        Some(bytes) => ZoneConfig::decode(&bytes)
            .map(Some)
            .map_err(|e| SqlError::internal(format!("zone configuration: {e}"))),
    }
}

pub(super) async fn write_zone(txn: &mut Txn, key: &[u8], z: &ZoneConfig) -> SqlResult<()> {
    if z.is_empty() {
        txn.del(key).await.map_err(kv_err)
    } else {
        txn.put(key, &z.encode()).await.map_err(kv_err)
    }
}

async fn resolve_target(
    node: &SqlNode,
    txn: &mut Txn,
    database: &str,
    target: &ZoneTarget,
) -> SqlResult<Target> {
    Ok(match target {
        ZoneTarget::Range(name) => Target::Range(match name.as_str() {
            "default" => RANGE_DEFAULT,
            "meta" => RANGE_META,
            "system" => RANGE_SYSTEM,
            other => {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    format!("\"{other}\" is not a valid range name (use default, meta or system)"),
                ));
            }
        }),
        ZoneTarget::Database(name) => Target::Database {
            id: node.catalog.require_database(txn, name).await?,
            name: name.clone(),
        },
        ZoneTarget::Table(name) => {
            let (t, _) = table_and_index(node, txn, database, name, false).await?;
            Target::Table(Arc::new(t))
        }
        ZoneTarget::Index(name) => {
            let (t, i) = table_and_index(node, txn, database, name, true).await?;
            Target::Index(Arc::new(t), i)
        }
    })
}

/// The zones `target` inherits from, nearest first (not its own; not the
/// built-in ones).
fn parents(target: &Target) -> Vec<(Target, Vec<u8>)> {
    let range = |id| (Target::Range(id), zone_key(id, None));
    let db = |t: &TableDesc| {
        (
            Target::Database {
                id: t.parent_id,
                name: String::new(),
            },
            zone_key(t.parent_id, None),
        )
    };
    match target {
        Target::Range(RANGE_DEFAULT) => vec![],
        Target::Range(_) | Target::Database { .. } => vec![range(RANGE_DEFAULT)],
        Target::Table(t) => vec![db(t), range(RANGE_DEFAULT)],
        Target::Index(t, _) => vec![
            (Target::Table(t.clone()), zone_key(t.id, None)),
            db(t),
            range(RANGE_DEFAULT),
        ],
    }
}

/// The built-in zone at the bottom of `target`'s chain.
fn builtin_for(target: &Target) -> ZoneConfig {
    match target {
        Target::Range(id) => builtin(*id),
        _ => builtin(RANGE_DEFAULT),
    }
}

/// `own` with everything it inherits, every field set.
async fn resolve(txn: &mut Txn, target: &Target, own: &ZoneConfig) -> SqlResult<ZoneConfig> {
    let mut z = own.clone();
    for (_, key) in parents(target) {
        if let Some(p) = read_zone(txn, &key).await? {
            z.inherit_from(&p);
        }
    }
    z.inherit_from(&builtin_for(target));
    Ok(z)
}

/// Runs `ALTER <target> CONFIGURE ZONE …`.
pub(super) async fn configure_zone(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    target: &ZoneTarget,
    discard: bool,
    settings: &[(String, ZoneValue)],
) -> SqlResult<QueryOutput> {
    let target = resolve_target(node, txn, database, target).await?;
    let key = target.key();
    let mut own = if discard {
        if matches!(target, Target::Range(RANGE_DEFAULT)) {
            return Err(SqlError::new(
                codes::INVALID_PARAMETER_VALUE,
                "cannot remove default zone",
            ));
        }
        ZoneConfig::default()
    } else {
        read_zone(txn, &key).await?.unwrap_or_default()
    };
    let mut seen = Vec::new();
    for (name, value) in settings {
        if !ZONE_FIELDS.contains(&name.as_str()) {
            return Err(SqlError::new(
                codes::INVALID_PARAMETER_VALUE,
                format!("unsupported zone config parameter: \"{name}\""),
            ));
        }
        if seen.contains(name) {
            return Err(SqlError::syntax(format!(
                "duplicate zone config parameter: \"{name}\""
            )));
        }
        seen.push(name.clone());
        let text = match value {
            ZoneValue::CopyFromParent => None,
            ZoneValue::Number(n) if name.contains("constraints") || name == "lease_preferences" => {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    format!("{name} must be a string, not {n}"),
                ));
            }
            ZoneValue::Text(t)
                if !(name.contains("constraints") || name == "lease_preferences") =>
            {
                return Err(SqlError::new(
                    codes::INVALID_PARAMETER_VALUE,
                    format!("{name} must be a number, not '{t}'"),
                ));
            }
            ZoneValue::Number(n) => Some(n.as_str()),
            ZoneValue::Text(t) => Some(t.as_str()),
        };
        own.set_field(name, text)
            .map_err(|e| SqlError::new(codes::INVALID_PARAMETER_VALUE, e))?;
    }
    let full = resolve(txn, &target, &own).await?;
    full.validate()
        .map_err(|e| SqlError::new(codes::CHECK_VIOLATION, e))?;
    if let Some(localities) = node.cluster_localities() {
        for (k, v) in own.named_tiers() {
            let known = localities
                .iter()
                .any(|l| l.iter().any(|(lk, lv)| *lk == k && *lv == v));
            if !known {
                return Err(SqlError::new(
                    codes::CHECK_VIOLATION,
                    format!(
                        "constraint \"+{k}={v}\" matches no existing nodes within the cluster - did you enter it correctly?"
                    ),
                ));
            }
        }
    }
    write_zone(txn, &key, &own).await?;
    // The span configs that change with it.
    match &target {
        Target::Range(RANGE_DEFAULT) => write_zone(txn, keys::SPAN_CONFIG_DEFAULT, &own).await?,
        Target::Range(id) => {
            let (start, end) = if *id == RANGE_META {
                (keys::META_MIN, keys::META_MAX)
            } else {
                (keys::SYSTEM_PREFIX, keys::SYSTEM_MAX)
            };
            let key = keys::span_config_key(start);
            if own.is_empty() {
                // KV's built-in zone for the span applies again.
                txn.del(&key).await.map_err(kv_err)?;
            } else {
                let mut z = own.clone();
                z.inherit_from(&builtin(*id));
                let sc = SpanConfig {
                    start: start.to_vec(),
                    end: end.to_vec(),
                    config: z,
                };
                txn.put(&key, &sc.encode_value()).await.map_err(kv_err)?;
            }
        }
        Target::Database { name, .. } => {
            for t in node.catalog.list_tables(txn, name).await? {
                write_span_configs(txn, &t).await?;
            }
        }
        Target::Table(t) | Target::Index(t, _) => write_span_configs(txn, t).await?,
    }
    Ok(QueryOutput::command("CONFIGURE ZONE"))
}

/// Writes the span configs of table (or sequence) `t` in `txn`, replacing
/// any it had. Views have no data and no span configs.
pub(super) async fn write_span_configs(txn: &mut Txn, t: &TableDesc) -> SqlResult<()> {
    if t.is_view() {
        return Ok(());
    }
    let (start, end) = rowenc::table_span(t);
    clear_span_configs(txn, t).await?;
    let mut base = read_zone(txn, &zone_key(t.id, None))
        .await?
        .unwrap_or_default();
    if let Some(db) = read_zone(txn, &zone_key(t.parent_id, None)).await? {
        base.inherit_from(&db);
    }
    // Indexes with zones of their own, in key order (by index id).
    let prefix = zone_key(t.id, None);
    let rows = txn
        .scan(&prefix, &keys::prefix_end(&prefix), 0)
        .await
        .map_err(kv_err)?;
    let mut pieces = Vec::new();
    for kv in rows {
        let Some(tail) = kv.key.get(prefix.len()..) else {
            continue;
        };
        let Ok(id) = <[u8; 4]>::try_from(tail).map(IndexId::from_be_bytes) else {
            continue;
        };
        if t.index(id).is_none() {
            continue;
        }
        let mut z = ZoneConfig::decode(&kv.value.bytes)
            .map_err(|e| SqlError::internal(format!("zone configuration: {e}")))?;
        z.inherit_from(&base);
        let (s, e) = rowenc::index_span(t, id);
        pieces.push((s, e, z));
    }
    pieces.sort_by(|a, b| a.0.cmp(&b.0));
    let mut cursor = start;
    let mut records = Vec::new();
    for (s, e, z) in pieces {
        if cursor < s {
            records.push(SpanConfig {
                start: cursor.clone(),
                end: s.clone(),
                config: base.clone(),
            });
        }
        records.push(SpanConfig {
            start: s,
            end: e.clone(),
            config: z,
        });
        cursor = e;
    }
    if cursor < end {
        records.push(SpanConfig {
            start: cursor,
            end,
            config: base,
        });
    }
    for r in records {
        txn.put(&keys::span_config_key(&r.start), &r.encode_value())
            .await
            .map_err(kv_err)?;
    }
    Ok(())
}

async fn clear_span_configs(txn: &mut Txn, t: &TableDesc) -> SqlResult<()> {
    let (start, end) = rowenc::table_span(t);
    txn.delete_range(&keys::span_config_key(&start), &keys::span_config_key(&end))
        .await
        .map_err(kv_err)
}

/// Removes the zones and span configs of a dropped table.
pub(super) async fn drop_table(txn: &mut Txn, t: &TableDesc) -> SqlResult<()> {
    clear_span_configs(txn, t).await?;
    let own = zone_key(t.id, None);
    txn.delete_range(&own, &keys::prefix_end(&own))
        .await
        .map_err(kv_err)
}

/// Removes the zone of a dropped database.
pub(super) async fn drop_database(txn: &mut Txn, id: DescId) -> SqlResult<()> {
    txn.del(&zone_key(id, None)).await.map_err(kv_err)
}

/// The `raw_config_sql` of a zone: the statement that would set it.
fn raw_config_sql(target: &str, z: &ZoneConfig) -> String {
    let mut lines = Vec::new();
    for field in ZONE_FIELDS {
        // num_voters and voter_constraints only when set, as CockroachDB.
        let optional = matches!(*field, "num_voters" | "voter_constraints");
        let Some(v) = z.field_sql(field) else {
            continue;
        };
        if optional && (v == "[]" || z.num_voters.is_none()) {
            continue;
        }
        let v = if field.contains("constraints") || *field == "lease_preferences" {
            format!("'{v}'")
        } else {
            v
        };
        lines.push(format!("\t{field} = {v}"));
    }
    format!("ALTER {target} CONFIGURE ZONE USING\n{}", lines.join(",\n"))
}

/// Runs `SHOW ZONE CONFIGURATION FROM <target>` (`Some`) or `SHOW ZONE
/// CONFIGURATIONS`.
pub(super) async fn show_zones(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    target: Option<&ZoneTarget>,
) -> SqlResult<QueryOutput> {
    let columns = text_columns(&["target", "raw_config_sql"]);
    let mut rows = Vec::new();
    match target {
        Some(target) => {
            // The nearest zone that is set (or RANGE default), resolved.
            let target = resolve_target(node, txn, database, target).await?;
            let own = read_zone(txn, &target.key()).await?;
            let mut shown =
                (own.is_some() || matches!(target, Target::Range(_))).then(|| target.clone());
            if shown.is_none() {
                for (p, key) in parents(&target) {
                    if read_zone(txn, &key).await?.is_some() {
                        shown = Some(p);
                        break;
                    }
                }
            }
            let shown = match shown {
                Some(Target::Database { id, name }) if name.is_empty() => Target::Database {
                    id,
                    name: database_name(node, txn, id).await?,
                },
                Some(s) => s,
                None => Target::Range(RANGE_DEFAULT),
            };
            let own = read_zone(txn, &shown.key()).await?.unwrap_or_default();
            let full = resolve(txn, &shown, &own).await?;
            let name = shown.display();
            rows.push(vec![text(&name), text(raw_config_sql(&name, &full))]);
        }
        None => {
            for id in [RANGE_DEFAULT, RANGE_META, RANGE_SYSTEM] {
                let t = Target::Range(id);
                let own = read_zone(txn, &t.key()).await?.unwrap_or_default();
                let full = resolve(txn, &t, &own).await?;
                let name = t.display();
                rows.push(vec![text(&name), text(raw_config_sql(&name, &full))]);
            }
            let kvs = txn
                .scan(ZONE_PREFIX, &keys::prefix_end(ZONE_PREFIX), 0)
                .await
                .map_err(kv_err)?;
            let mut names: HashMap<DescId, String> = HashMap::new();
            for d in node.catalog.list_databases(txn).await? {
                names.insert(d.id, d.name.clone());
            }
            for kv in kvs {
                let tail = &kv.key[ZONE_PREFIX.len()..];
                let id = match tail.get(..4).map(<[u8; 4]>::try_from) {
                    Some(Ok(b)) => DescId::from_be_bytes(b),
                    _ => continue,
                };
                let index = tail
                    .get(4..8)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(IndexId::from_be_bytes);
                let target = if let Some(name) = names.get(&id) {
                    Target::Database {
                        id,
                        name: name.clone(),
                    }
                } else if id < crate::catalog::DEFAULTDB_ID {
                    continue; // the named ranges, listed above
                } else {
                    let Ok(t) = node.catalog.table_by_id(txn, id).await else {
                        continue;
                    };
                    match index {
                        Some(i) => Target::Index(t, i),
                        None => Target::Table(t),
                    }
                };
                let own = ZoneConfig::decode(&kv.value.bytes)
                    .map_err(|e| SqlError::internal(format!("zone configuration: {e}")))?;
                let full = resolve(txn, &target, &own).await?;
                let name = match &target {
                    Target::Table(t) | Target::Index(t, _) => {
                        let db = names.get(&t.parent_id).cloned().unwrap_or_default();
                        target.display().replacen(' ', &format!(" {db}.public."), 1)
                    }
                    _ => target.display(),
                };
                rows.push(vec![text(&name), text(raw_config_sql(&name, &full))]);
            }
        }
    }
    let rows: Vec<Vec<Value>> = rows;
    Ok(rows_output("SHOW", columns, rows))
}

/// `SHOW REGIONS [FROM CLUSTER]`: the cluster's regions (the `region`
/// tier of its nodes' localities) with their zones, sorted. (`FROM
/// DATABASE` is [`super::regions::show_database_regions`].)
pub(super) fn show_regions(node: &SqlNode) -> SqlResult<QueryOutput> {
    let mut regions: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for locality in node.cluster_localities().unwrap_or_default() {
        let tier = |k: &str| {
            locality
                .iter()
                .find(|(t, _)| t == k)
                .map(|(_, v)| v.clone())
        };
        if let Some(region) = tier("region") {
            let zones = regions.entry(region).or_default();
            if let Some(zone) = tier("zone") {
                zones.insert(zone);
            }
        }
    }
    let columns = text_columns(&["region", "zones"]);
    let rows = regions
        .into_iter()
        .map(|(region, zones)| {
            let zones: Vec<String> = zones.into_iter().collect();
            vec![text(region), text(format!("{{{}}}", zones.join(",")))]
        })
        .collect();
    Ok(rows_output("SHOW", columns, rows))
}

async fn database_name(node: &SqlNode, txn: &mut Txn, id: DescId) -> SqlResult<String> {
    Ok(node
        .catalog
        .list_databases(txn)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .map(|d| d.name)
        .unwrap_or_else(|| id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_config_sql_is_cockroachdbs_shape() {
        let z = builtin(RANGE_DEFAULT);
        assert_eq!(
            raw_config_sql("RANGE default", &z),
            "ALTER RANGE default CONFIGURE ZONE USING\n\trange_min_bytes = 134217728,\n\
             \trange_max_bytes = 536870912,\n\tgc.ttlseconds = 14400,\n\tnum_replicas = 3,\n\
             \tconstraints = '[]',\n\tlease_preferences = '[]'"
        );
    }
}
