//! Multi-region databases, as CockroachDB's SQL has them, on top of zone
//! configurations ([`super::zone`]): `ALTER DATABASE d PRIMARY REGION r`,
//! `ADD REGION`, `DROP REGION`, `SURVIVE {ZONE | REGION} FAILURE`, `SHOW
//! REGIONS FROM DATABASE`, `SHOW SURVIVAL GOAL`, and `ALTER TABLE t SET
//! LOCALITY {REGIONAL BY TABLE [IN r] | GLOBAL}`.
//!
//! A database's regions (its primary region, the others, its survival
//! goal) live at `/System/"sql-regions"/<db id>`; a table's locality, when
//! it is not the default (regional by table in the primary region), at
//! `/System/"sql-locality"/<table id>`. Every change rewrites the zones
//! they imply, as CockroachDB's placement rules say, for a home region H
//! (the primary region for the database, a table's region for a table
//! homed elsewhere) among N regions:
//!
//! - zone survival: `num_voters = 3`, `voter_constraints = [+region=H]`,
//!   `num_replicas = N + 2`, one replica per region in `constraints`;
//! - region survival (at least 3 regions): `num_voters = 5`,
//!   `voter_constraints = {"+region=H": 2}`, `num_replicas = max(5, N)`;
//! - both: `lease_preferences = [[+region=H]]`.
//!
//! then the span configs of the database's tables. Regions must be regions
//! of the cluster's nodes (when the server said how to list them).
//!
//! TODO(issue 14): non-voting replicas (until then the allocator places
//! the voters only: zone survival keeps all three in the home region and
//! no copy elsewhere); `GLOBAL` tables read locally only once non-blocking
//! transactions exist (today a `GLOBAL` table is homed in the primary
//! region); `REGIONAL BY ROW` needs partitioned indexes; `CREATE DATABASE
//! … PRIMARY REGION`.

use std::collections::BTreeSet;
use std::sync::Arc;

use tardigrade_kv::Txn;
use tardigrade_kvpb::codec::{ByteReader, put_bytes};
use tardigrade_kvpb::zone::ZoneConfig;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, Value};

use super::zone::{write_span_configs, write_zone, zone_key};
use super::{rows_output, table_and_index, text, text_columns};
use crate::catalog::{DescId, kv_err};
use crate::node::{QueryOutput, SqlNode};
use crate::parse::{Locality, RegionStmt};

const REGIONS_PREFIX: &[u8] = b"\x04sql-regions/";
const LOCALITY_PREFIX: &[u8] = b"\x04sql-locality/";

fn key(prefix: &[u8], id: DescId) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// A multi-region database's regions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct DbRegions {
    primary: String,
    /// Every region, the primary included.
    regions: BTreeSet<String>,
    survive_region: bool,
}

impl DbRegions {
    fn encode(&self) -> Vec<u8> {
        let mut b = vec![1u8, self.survive_region as u8];
        put_bytes(&mut b, self.primary.as_bytes());
        b.extend_from_slice(&(self.regions.len() as u32).to_be_bytes());
        for r in &self.regions {
            put_bytes(&mut b, r.as_bytes());
        }
        b
    }

    fn decode(bytes: &[u8]) -> SqlResult<DbRegions> {
        let bad = |_| SqlError::internal("unreadable database regions");
        let mut r = ByteReader::new(bytes);
        if r.u8().map_err(bad)? != 1 {
            return Err(SqlError::internal("unknown database regions format"));
        }
        let survive_region = r.u8().map_err(bad)? != 0;
        let text = |b: Vec<u8>| {
            String::from_utf8(b).map_err(|_| SqlError::internal("region name not UTF-8"))
        };
        let primary = text(r.bytes().map_err(bad)?)?;
        let n = r.u32().map_err(bad)?;
        let mut regions = BTreeSet::new();
        for _ in 0..n {
            regions.insert(text(r.bytes().map_err(bad)?)?);
        }
        r.done().map_err(bad)?;
        Ok(DbRegions {
            primary,
            regions,
            survive_region,
        })
    }

    /// The zone of data homed in `home`.
    fn zone(&self, home: &str) -> ZoneConfig {
        let n = self.regions.len() as u32;
        let mut z = ZoneConfig::default();
        let each: Vec<String> = self
            .regions
            .iter()
            .map(|r| format!("\"+region={r}\": 1"))
            .collect();
        let set = |z: &mut ZoneConfig, k: &str, v: &str| {
            // The texts are built here and always parse.
            let _ = z.set_field(k, Some(v));
        };
        set(&mut z, "constraints", &format!("{{{}}}", each.join(", ")));
        set(&mut z, "lease_preferences", &format!("[[+region={home}]]"));
        if self.survive_region {
            set(&mut z, "num_voters", "5");
            set(&mut z, "num_replicas", &n.max(5).to_string());
            set(
                &mut z,
                "voter_constraints",
                &format!("{{\"+region={home}\": 2}}"),
            );
        } else {
            set(&mut z, "num_voters", "3");
            set(&mut z, "num_replicas", &(n + 2).to_string());
            set(&mut z, "voter_constraints", &format!("[+region={home}]"));
        }
        z
    }
}

async fn read_regions(txn: &mut Txn, db: DescId) -> SqlResult<Option<DbRegions>> {
    match txn.get(&key(REGIONS_PREFIX, db)).await.map_err(kv_err)? {
        Some(b) => DbRegions::decode(&b).map(Some),
        None => Ok(None),
    }
}

/// A table's locality record: `None` for the default.
async fn read_locality(txn: &mut Txn, table: DescId) -> SqlResult<Option<Locality>> {
    let Some(b) = txn
        .get(&key(LOCALITY_PREFIX, table))
        .await
        .map_err(kv_err)?
    else {
        return Ok(None);
    };
    Ok(match b.split_first() {
        Some((0, _)) => Some(Locality::Global),
        Some((1, region)) => Some(Locality::RegionalByTable(Some(
            String::from_utf8(region.to_vec())
                .map_err(|_| SqlError::internal("region name not UTF-8"))?,
        ))),
        _ => None,
    })
}

/// The regions of the cluster's nodes, if the server said how to list
/// them.
fn cluster_regions(node: &SqlNode) -> Option<BTreeSet<String>> {
    node.cluster_localities().map(|all| {
        all.iter()
            .filter_map(|l| {
                l.iter()
                    .find(|(k, _)| k == "region")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    })
}

fn check_cluster_region(node: &SqlNode, region: &str) -> SqlResult<()> {
    match cluster_regions(node) {
        Some(known) if !known.contains(region) => {
            let valid: Vec<String> = known.into_iter().collect();
            Err(SqlError::new(
                codes::UNDEFINED_OBJECT,
                format!("region \"{region}\" does not exist"),
            )
            .with_hint(format!("valid regions: {}", valid.join(", "))))
        }
        _ => Ok(()),
    }
}

/// Runs a multi-region statement.
pub(super) async fn execute(
    node: &Arc<SqlNode>,
    txn: &mut Txn,
    database: &str,
    stmt: &RegionStmt,
) -> SqlResult<QueryOutput> {
    let db_named = |d: &str| {
        if d.is_empty() {
            database.to_string()
        } else {
            d.to_string()
        }
    };
    match stmt {
        RegionStmt::ShowSurvivalGoal { database: d } => {
            let name = db_named(d);
            let id = node.catalog.require_database(txn, &name).await?;
            let goal = read_regions(txn, id).await?.map_or(Value::Null, |r| {
                text(if r.survive_region { "region" } else { "zone" })
            });
            let columns = text_columns(&["database", "survival_goal"]);
            Ok(rows_output("SHOW", columns, vec![vec![text(name), goal]]))
        }
        RegionStmt::PrimaryRegion {
            database: d,
            region,
        } => {
            let id = node.catalog.require_database(txn, d).await?;
            check_cluster_region(node, region)?;
            let regions = match read_regions(txn, id).await? {
                None => DbRegions {
                    primary: region.clone(),
                    regions: BTreeSet::from([region.clone()]),
                    survive_region: false,
                },
                Some(r) if r.regions.contains(region) => DbRegions {
                    primary: region.clone(),
                    ..r
                },
                Some(_) => {
                    return Err(SqlError::new(
                        codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                        format!("region \"{region}\" has not been added to the database"),
                    )
                    .with_hint(format!(
                        "you must add the region to the database before setting it as primary region, using ALTER DATABASE {d} ADD REGION \"{region}\""
                    )));
                }
            };
            apply(node, txn, id, d, Some(&regions)).await?;
            Ok(QueryOutput::command("ALTER DATABASE PRIMARY REGION"))
        }
        RegionStmt::AddRegion {
            database: d,
            region,
            if_not_exists,
        } => {
            let id = node.catalog.require_database(txn, d).await?;
            check_cluster_region(node, region)?;
            let Some(mut regions) = read_regions(txn, id).await? else {
                return Err(SqlError::new(
                    codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("cannot add region \"{region}\" to database {d}"),
                )
                .with_hint(format!(
                    "you must add a PRIMARY REGION first using ALTER DATABASE {d} PRIMARY REGION \"{region}\""
                )));
            };
            if !regions.regions.insert(region.clone()) {
                if *if_not_exists {
                    return Ok(QueryOutput::command("ALTER DATABASE ADD REGION"));
                }
                return Err(SqlError::new(
                    codes::DUPLICATE_OBJECT,
                    format!("region \"{region}\" already added to database"),
                ));
            }
            apply(node, txn, id, d, Some(&regions)).await?;
            Ok(QueryOutput::command("ALTER DATABASE ADD REGION"))
        }
        RegionStmt::DropRegion {
            database: d,
            region,
            if_exists,
        } => {
            let id = node.catalog.require_database(txn, d).await?;
            let regions = read_regions(txn, id).await?;
            let Some(mut regions) = regions.filter(|r| r.regions.contains(region)) else {
                if *if_exists {
                    return Ok(QueryOutput::command("ALTER DATABASE DROP REGION"));
                }
                return Err(SqlError::new(
                    codes::UNDEFINED_OBJECT,
                    format!("region \"{region}\" has not been added to the database"),
                ));
            };
            if regions.primary == *region && regions.regions.len() > 1 {
                return Err(SqlError::new(
                    codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("cannot drop region \"{region}\""),
                )
                .with_hint(format!(
                    "You must designate another region as the primary region using ALTER DATABASE {d} PRIMARY REGION <region name> or remove all other regions before attempting to drop region \"{region}\""
                )));
            }
            if regions.survive_region && regions.regions.len() <= 3 {
                return Err(SqlError::new(
                    codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "at least 3 regions are required for surviving a region failure; cannot drop region \"{region}\""
                    ),
                ));
            }
            // A table homed in the region goes back to the primary region.
            for t in node.catalog.list_tables(txn, d).await? {
                if read_locality(txn, t.id).await?
                    == Some(Locality::RegionalByTable(Some(region.clone())))
                {
                    return Err(SqlError::new(
                        codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                        format!(
                            "cannot drop region \"{region}\": table {} is homed in it",
                            t.name
                        ),
                    ));
                }
            }
            regions.regions.remove(region);
            let remaining = (!regions.regions.is_empty()).then_some(&regions);
            apply(node, txn, id, d, remaining).await?;
            Ok(QueryOutput::command("ALTER DATABASE DROP REGION"))
        }
        RegionStmt::Survive {
            database: d,
            region,
        } => {
            let id = node.catalog.require_database(txn, d).await?;
            let Some(mut regions) = read_regions(txn, id).await? else {
                return Err(SqlError::new(
                    codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("database {d} is not multi-region enabled"),
                )
                .with_hint(format!(
                    "you must add a PRIMARY REGION first using ALTER DATABASE {d} PRIMARY REGION <region>"
                )));
            };
            if *region && regions.regions.len() < 3 {
                return Err(SqlError::new(
                    codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "at least 3 regions are required for surviving a region failure",
                )
                .with_hint(format!(
                    "you must add additional regions to the database using ALTER DATABASE {d} ADD REGION <region_name>"
                )));
            }
            regions.survive_region = *region;
            apply(node, txn, id, d, Some(&regions)).await?;
            Ok(QueryOutput::command("ALTER DATABASE SURVIVE"))
        }
        RegionStmt::SetLocality { table, locality } => {
            let (t, _) = table_and_index(node, txn, database, table, false).await?;
            let db = node
                .catalog
                .list_databases(txn)
                .await?
                .into_iter()
                .find(|x| x.id == t.parent_id)
                .ok_or_else(|| SqlError::internal("table without a database"))?;
            let Some(regions) = read_regions(txn, db.id).await? else {
                return Err(SqlError::new(
                    codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "cannot alter a table's LOCALITY if its database is not multi-region enabled",
                ));
            };
            let record = match locality {
                Locality::RegionalByRow => {
                    return Err(SqlError::unsupported(
                        "REGIONAL BY ROW tables: partitioned indexes are not supported yet",
                    ));
                }
                Locality::Global => Some(vec![0u8]),
                Locality::RegionalByTable(Some(r)) if *r != regions.primary => {
                    if !regions.regions.contains(r) {
                        return Err(SqlError::new(
                            codes::UNDEFINED_OBJECT,
                            format!(
                                "region \"{r}\" has not been added to database \"{}\"",
                                db.name
                            ),
                        ));
                    }
                    let mut b = vec![1u8];
                    b.extend_from_slice(r.as_bytes());
                    Some(b)
                }
                Locality::RegionalByTable(_) => None,
            };
            let k = key(LOCALITY_PREFIX, t.id);
            match record {
                Some(b) => txn.put(&k, &b).await.map_err(kv_err)?,
                None => txn.del(&k).await.map_err(kv_err)?,
            }
            apply(node, txn, db.id, &db.name, Some(&regions)).await?;
            Ok(QueryOutput::command("ALTER TABLE SET LOCALITY"))
        }
    }
}

/// Writes `regions` (or removes them: the database is no longer
/// multi-region) and every zone and span config they imply.
async fn apply(
    node: &SqlNode,
    txn: &mut Txn,
    db: DescId,
    db_name: &str,
    regions: Option<&DbRegions>,
) -> SqlResult<()> {
    let k = key(REGIONS_PREFIX, db);
    match regions {
        Some(r) => {
            txn.put(&k, &r.encode()).await.map_err(kv_err)?;
            write_zone(txn, &zone_key(db, None), &r.zone(&r.primary)).await?;
        }
        None => {
            txn.del(&k).await.map_err(kv_err)?;
            write_zone(txn, &zone_key(db, None), &ZoneConfig::default()).await?;
        }
    }
    for t in node.catalog.list_tables(txn, db_name).await? {
        let locality = read_locality(txn, t.id).await?;
        let table_zone = match (regions, locality) {
            (Some(r), Some(Locality::RegionalByTable(Some(home)))) => Some(r.zone(&home)),
            // TODO(issue 14): GLOBAL tables need non-blocking transactions
            // to read locally in every region; homed in the primary now.
            (Some(r), Some(Locality::Global)) => Some(r.zone(&r.primary)),
            (None, Some(_)) => {
                txn.del(&key(LOCALITY_PREFIX, t.id)).await.map_err(kv_err)?;
                Some(ZoneConfig::default())
            }
            _ => None,
        };
        if let Some(z) = table_zone {
            write_zone(txn, &zone_key(t.id, None), &z).await?;
        }
        write_span_configs(txn, &t).await?;
    }
    Ok(())
}

/// `SHOW REGIONS FROM DATABASE [d]`: the database's regions, the primary
/// first marked, with the zones the cluster's nodes have in each.
pub(super) async fn show_database_regions(
    node: &SqlNode,
    txn: &mut Txn,
    name: &str,
) -> SqlResult<QueryOutput> {
    let id = node.catalog.require_database(txn, name).await?;
    let mut zones_of: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for l in node.cluster_localities().unwrap_or_default() {
        let tier = |k: &str| l.iter().find(|(t, _)| t == k).map(|(_, v)| v.clone());
        if let Some(r) = tier("region") {
            let z = zones_of.entry(r).or_default();
            if let Some(zone) = tier("zone") {
                z.insert(zone);
            }
        }
    }
    let mut rows = Vec::new();
    if let Some(r) = read_regions(txn, id).await? {
        let mut ordered: Vec<&String> = r.regions.iter().collect();
        ordered.sort_by_key(|x| **x != r.primary);
        for region in ordered {
            let zones: Vec<String> = zones_of
                .get(region)
                .map(|z| z.iter().cloned().collect())
                .unwrap_or_default();
            rows.push(vec![
                text(name),
                text(region.clone()),
                Value::Bool(*region == r.primary),
                text(format!("{{{}}}", zones.join(","))),
            ]);
        }
    }
    let mut columns = text_columns(&["database", "region", "primary", "zones"]);
    columns[2].ty = tardigrade_sqltypes::SqlType::Bool;
    Ok(rows_output("SHOW", columns, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survival_goals_follow_cockroachdbs_placement() {
        let mut r = DbRegions {
            primary: "us-east1".into(),
            regions: ["us-east1", "us-west1", "europe-west1"]
                .into_iter()
                .map(String::from)
                .collect(),
            survive_region: false,
        };
        let z = r.zone("us-east1");
        assert_eq!(z.num_voters, Some(3));
        assert_eq!(z.num_replicas, Some(5));
        assert_eq!(
            z.field_sql("voter_constraints").as_deref(),
            Some("[+region=us-east1]")
        );
        assert_eq!(
            z.field_sql("lease_preferences").as_deref(),
            Some("[[+region=us-east1]]")
        );
        let mut full = z.clone();
        full.inherit_from(&ZoneConfig::builtin_default(3, 512 << 20));
        assert!(full.validate().is_ok(), "{:?}", full.validate());
        r.survive_region = true;
        let z = r.zone("us-west1");
        assert_eq!(z.num_voters, Some(5));
        assert_eq!(
            z.field_sql("voter_constraints").as_deref(),
            Some("{\"+region=us-west1\": 2}")
        );
        let mut full = z;
        full.inherit_from(&ZoneConfig::builtin_default(3, 512 << 20));
        assert!(full.validate().is_ok(), "{:?}", full.validate());
        assert_eq!(DbRegions::decode(&r.encode()).expect("decode"), r);
    }
}
