//! Zone configurations: the replication and storage policy a span of keys
//! asks for (CockroachDB's zone configs and span configs).
//!
//! A [`ZoneConfig`] is a set of optional fields; an unset field inherits
//! from the parent zone (index → table → database → `RANGE default`, then
//! the built-in defaults). The SQL layer stores the zones users set, keyed
//! by the object's id, and turns them into **span configs**: one record per
//! table (and per index with a zone of its own), under
//! [`tardigrade_encoding::keys::SPAN_CONFIG_PREFIX`], holding the span's end
//! key and its config resolved up to (not including) `RANGE default`, which
//! has its own record ([`tardigrade_encoding::keys::SPAN_CONFIG_DEFAULT`]).
//! The KV layer reads those records and nothing above them: the split queue
//! splits ranges at every record's bounds (so each table starts in its own
//! range) and at `range_max_bytes`; the replicate queue asks the allocator
//! for `num_replicas` replicas satisfying `constraints`, with the lease on a
//! store matching `lease_preferences`; the GC queue keeps `gc.ttlseconds`
//! of MVCC history.
//!
//! Constraints use CockroachDB's text forms: `[+region=us-east1, -zone=b]`
//! applies to every replica; `{"+region=us-east1": 2, "+region=us-west1":
//! 1}` asks for that many replicas matching each conjunction (the rest are
//! placed freely); lease preferences are `[[+region=us-east1], [+region=
//! us-west1]]`, the first one that some voter satisfies wins.

use std::fmt;

use crate::codec::{ByteReader, DecodeError, put_bytes};

/// One constraint on a store's locality: it must (`+`) or must not (`-`)
/// have the tier `key=value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Constraint {
    pub required: bool,
    pub key: String,
    pub value: String,
}

impl Constraint {
    /// Whether a store with `locality` satisfies the constraint.
    pub fn matches(&self, locality: &[(String, String)]) -> bool {
        let has = locality
            .iter()
            .any(|(k, v)| *k == self.key && *v == self.value);
        has == self.required
    }

    /// Parses `+key=value` or `-key=value`.
    pub fn parse(s: &str) -> Result<Constraint, String> {
        let s = s.trim();
        let (required, rest) = match s.as_bytes().first() {
            Some(b'+') => (true, &s[1..]),
            Some(b'-') => (false, &s[1..]),
            _ => {
                return Err(format!(
                    "constraint {s:?} must start with '+' (required) or '-' (prohibited)"
                ));
            }
        };
        match rest.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok(Constraint {
                required,
                key: k.trim().to_string(),
                value: v.trim().to_string(),
            }),
            _ => Err(format!(
                "constraint {s:?} must have the form +key=value or -key=value \
                 (store attributes are not supported)"
            )),
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.required { '+' } else { '-' };
        write!(f, "{sign}{}={}", self.key, self.value)
    }
}

/// Constraints that `num_replicas` replicas must all satisfy together; 0
/// means every replica of the range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConstraintConjunction {
    pub num_replicas: u32,
    pub constraints: Vec<Constraint>,
}

impl ConstraintConjunction {
    pub fn matches(&self, locality: &[(String, String)]) -> bool {
        self.constraints.iter().all(|c| c.matches(locality))
    }
}

/// The policy of a zone; `None` fields inherit from the parent zone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ZoneConfig {
    pub num_replicas: Option<u32>,
    /// Voting replicas; the rest of `num_replicas` would be non-voting.
    /// TODO(issue 14): non-voting replicas do not exist yet, so every
    /// replica votes and this is only stored and shown.
    pub num_voters: Option<u32>,
    pub constraints: Option<Vec<ConstraintConjunction>>,
    /// TODO(issue 14): applies with non-voting replicas; stored and shown.
    pub voter_constraints: Option<Vec<ConstraintConjunction>>,
    pub lease_preferences: Option<Vec<Vec<Constraint>>>,
    pub gc_ttl_seconds: Option<u32>,
    pub range_min_bytes: Option<u64>,
    pub range_max_bytes: Option<u64>,
}

/// Every field of [`ZoneConfig`], by its SQL name, in the order SHOW ZONE
/// CONFIGURATION prints them.
pub const ZONE_FIELDS: &[&str] = &[
    "range_min_bytes",
    "range_max_bytes",
    "gc.ttlseconds",
    "num_replicas",
    "num_voters",
    "constraints",
    "voter_constraints",
    "lease_preferences",
];

/// `gc.ttlseconds` of `RANGE default` (CockroachDB's default, 4 hours).
pub const DEFAULT_GC_TTL_SECONDS: u32 = 4 * 60 * 60;
/// `range_min_bytes` of `RANGE default`.
pub const DEFAULT_RANGE_MIN_BYTES: u64 = 128 << 20;
/// `range_max_bytes` of `RANGE default`.
pub const DEFAULT_RANGE_MAX_BYTES: u64 = 512 << 20;
/// The smallest `range_max_bytes` a zone may set.
pub const MIN_RANGE_MAX_BYTES: u64 = 64 << 10;

const FORMAT_VERSION: u8 = 1;

impl ZoneConfig {
    /// The built-in `RANGE default`, every field set.
    pub fn builtin_default(num_replicas: u32, range_max_bytes: u64) -> ZoneConfig {
        ZoneConfig {
            num_replicas: Some(num_replicas),
            num_voters: None,
            constraints: Some(Vec::new()),
            voter_constraints: Some(Vec::new()),
            lease_preferences: Some(Vec::new()),
            gc_ttl_seconds: Some(DEFAULT_GC_TTL_SECONDS),
            range_min_bytes: Some(DEFAULT_RANGE_MIN_BYTES.min(range_max_bytes / 4)),
            range_max_bytes: Some(range_max_bytes),
        }
    }

    /// Fills every unset field from `parent`.
    pub fn inherit_from(&mut self, parent: &ZoneConfig) {
        fn fill<T: Clone>(f: &mut Option<T>, p: &Option<T>) {
            if f.is_none() {
                f.clone_from(p);
            }
        }
        fill(&mut self.num_replicas, &parent.num_replicas);
        fill(&mut self.num_voters, &parent.num_voters);
        fill(&mut self.constraints, &parent.constraints);
        fill(&mut self.voter_constraints, &parent.voter_constraints);
        fill(&mut self.lease_preferences, &parent.lease_preferences);
        fill(&mut self.gc_ttl_seconds, &parent.gc_ttl_seconds);
        fill(&mut self.range_min_bytes, &parent.range_min_bytes);
        fill(&mut self.range_max_bytes, &parent.range_max_bytes);
    }

    pub fn is_empty(&self) -> bool {
        *self == ZoneConfig::default()
    }

    /// Sets the field named `name` (one of [`ZONE_FIELDS`]) from its SQL
    /// text: a number, or a constraint list for the constraint fields.
    /// `None` resets it to inherit (`COPY FROM PARENT`).
    pub fn set_field(&mut self, name: &str, text: Option<&str>) -> Result<(), String> {
        let num = |t: &str| -> Result<u64, String> {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("{name}: {t:?} is not a non-negative integer"))
        };
        let small = |t: &str| -> Result<u32, String> {
            u32::try_from(num(t)?).map_err(|_| format!("{name}: {t} is too large"))
        };
        match (name, text) {
            ("num_replicas", t) => self.num_replicas = t.map(small).transpose()?,
            ("num_voters", t) => self.num_voters = t.map(small).transpose()?,
            ("gc.ttlseconds", t) => self.gc_ttl_seconds = t.map(small).transpose()?,
            ("range_min_bytes", t) => self.range_min_bytes = t.map(num).transpose()?,
            ("range_max_bytes", t) => self.range_max_bytes = t.map(num).transpose()?,
            ("constraints", t) => self.constraints = t.map(parse_constraints).transpose()?,
            ("voter_constraints", t) => {
                self.voter_constraints = t.map(parse_constraints).transpose()?
            }
            ("lease_preferences", t) => {
                self.lease_preferences = t.map(parse_lease_preferences).transpose()?
            }
            _ => return Err(format!("unknown zone configuration field {name:?}")),
        }
        Ok(())
    }

    /// The SQL text of the field named `name`, if it is set.
    pub fn field_sql(&self, name: &str) -> Option<String> {
        match name {
            "num_replicas" => self.num_replicas.map(|n| n.to_string()),
            "num_voters" => self.num_voters.map(|n| n.to_string()),
            "gc.ttlseconds" => self.gc_ttl_seconds.map(|n| n.to_string()),
            "range_min_bytes" => self.range_min_bytes.map(|n| n.to_string()),
            "range_max_bytes" => self.range_max_bytes.map(|n| n.to_string()),
            "constraints" => self.constraints.as_deref().map(format_constraints),
            "voter_constraints" => self.voter_constraints.as_deref().map(format_constraints),
            "lease_preferences" => self
                .lease_preferences
                .as_deref()
                .map(format_lease_preferences),
            _ => None,
        }
    }

    /// Checks a zone after inheriting from its parents (every field that
    /// matters set), as CockroachDB does before accepting it.
    pub fn validate(&self) -> Result<(), String> {
        let replicas = self.num_replicas.unwrap_or(1);
        if self.num_replicas == Some(0) {
            return Err("at least one replica is required".into());
        }
        if let Some(v) = self.num_voters {
            if v == 0 {
                return Err("at least one voting replica is required".into());
            }
            if v > replicas {
                return Err(format!(
                    "num_voters cannot be greater than num_replicas ({v} > {replicas})"
                ));
            }
        }
        if self.gc_ttl_seconds == Some(0) {
            return Err("gc.ttlseconds must be at least 1".into());
        }
        if let Some(max) = self.range_max_bytes
            && max < MIN_RANGE_MAX_BYTES
        {
            return Err(format!(
                "range_max_bytes {max} less than minimum allowed {MIN_RANGE_MAX_BYTES}"
            ));
        }
        if let (Some(min), Some(max)) = (self.range_min_bytes, self.range_max_bytes)
            && min >= max
        {
            return Err(format!(
                "range_min_bytes {min} is greater than or equal to range_max_bytes {max}"
            ));
        }
        for (field, list, limit) in [
            ("constraints", &self.constraints, replicas),
            (
                "voter_constraints",
                &self.voter_constraints,
                self.num_voters.unwrap_or(replicas),
            ),
        ] {
            let counted: u32 = list
                .iter()
                .flatten()
                .map(|c| c.num_replicas)
                .fold(0, u32::saturating_add);
            if counted > limit {
                return Err(format!(
                    "the number of replicas specified in {field} ({counted}) cannot be greater \
                     than the number of replicas configured for the zone ({limit})"
                ));
            }
        }
        Ok(())
    }

    /// Every `key=value` tier the zone's constraints name (to check that
    /// some node has it).
    pub fn named_tiers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let lists = [&self.constraints, &self.voter_constraints];
        for c in lists.into_iter().flatten().flatten() {
            for k in &c.constraints {
                out.push((k.key.clone(), k.value.clone()));
            }
        }
        for p in self.lease_preferences.iter().flatten().flatten() {
            out.push((p.key.clone(), p.value.clone()));
        }
        out.sort();
        out.dedup();
        out
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![FORMAT_VERSION];
        let mut mask = 0u8;
        for (i, set) in [
            self.num_replicas.is_some(),
            self.num_voters.is_some(),
            self.constraints.is_some(),
            self.voter_constraints.is_some(),
            self.lease_preferences.is_some(),
            self.gc_ttl_seconds.is_some(),
            self.range_min_bytes.is_some(),
            self.range_max_bytes.is_some(),
        ]
        .into_iter()
        .enumerate()
        {
            mask |= (set as u8) << i;
        }
        b.push(mask);
        for n in [self.num_replicas, self.num_voters].into_iter().flatten() {
            b.extend_from_slice(&n.to_be_bytes());
        }
        for list in [&self.constraints, &self.voter_constraints]
            .into_iter()
            .flatten()
        {
            b.extend_from_slice(&(list.len() as u32).to_be_bytes());
            for c in list {
                b.extend_from_slice(&c.num_replicas.to_be_bytes());
                encode_constraints(&mut b, &c.constraints);
            }
        }
        if let Some(prefs) = &self.lease_preferences {
            b.extend_from_slice(&(prefs.len() as u32).to_be_bytes());
            for p in prefs {
                encode_constraints(&mut b, p);
            }
        }
        if let Some(n) = self.gc_ttl_seconds {
            b.extend_from_slice(&n.to_be_bytes());
        }
        for n in [self.range_min_bytes, self.range_max_bytes]
            .into_iter()
            .flatten()
        {
            b.extend_from_slice(&n.to_be_bytes());
        }
        b
    }

    pub fn decode(bytes: &[u8]) -> Result<ZoneConfig, DecodeError> {
        let mut r = ByteReader::new(bytes);
        if r.u8()? != FORMAT_VERSION {
            return Err(DecodeError("unknown zone configuration format"));
        }
        let mask = r.u8()?;
        let has = |i: u8| mask & (1 << i) != 0;
        let mut z = ZoneConfig::default();
        if has(0) {
            z.num_replicas = Some(r.u32()?);
        }
        if has(1) {
            z.num_voters = Some(r.u32()?);
        }
        for (i, slot) in [(2u8, &mut z.constraints), (3, &mut z.voter_constraints)] {
            if has(i) {
                let n = r.u32()? as usize;
                let mut list = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    let num_replicas = r.u32()?;
                    list.push(ConstraintConjunction {
                        num_replicas,
                        constraints: decode_constraints(&mut r)?,
                    });
                }
                *slot = Some(list);
            }
        }
        if has(4) {
            let n = r.u32()? as usize;
            let mut prefs = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                prefs.push(decode_constraints(&mut r)?);
            }
            z.lease_preferences = Some(prefs);
        }
        if has(5) {
            z.gc_ttl_seconds = Some(r.u32()?);
        }
        if has(6) {
            z.range_min_bytes = Some(r.u64()?);
        }
        if has(7) {
            z.range_max_bytes = Some(r.u64()?);
        }
        r.done()?;
        Ok(z)
    }
}

fn encode_constraints(b: &mut Vec<u8>, list: &[Constraint]) {
    b.extend_from_slice(&(list.len() as u32).to_be_bytes());
    for c in list {
        b.push(c.required as u8);
        put_bytes(b, c.key.as_bytes());
        put_bytes(b, c.value.as_bytes());
    }
}

fn decode_constraints(r: &mut ByteReader<'_>) -> Result<Vec<Constraint>, DecodeError> {
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(64));
    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| DecodeError("constraint not UTF-8"));
    for _ in 0..n {
        let required = r.u8()? != 0;
        let key = text(r.bytes()?)?;
        let value = text(r.bytes()?)?;
        out.push(Constraint {
            required,
            key,
            value,
        });
    }
    Ok(out)
}

/// Splits `s` at top-level commas (outside brackets and quotes).
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    let mut out = Vec::new();
    for (i, ch) in s.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn parse_list(s: &str) -> Result<Vec<Constraint>, String> {
    split_top(s).into_iter().map(Constraint::parse).collect()
}

/// Parses a `constraints` value: `[+a=b, -c=d]` (every replica) or
/// `{"+a=b": 2, "+c=d,-e=f": 1}` (per replica count).
pub fn parse_constraints(text: &str) -> Result<Vec<ConstraintConjunction>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let list = parse_list(inner)?;
        if list.is_empty() {
            return Ok(Vec::new());
        }
        return Ok(vec![ConstraintConjunction {
            num_replicas: 0,
            constraints: list,
        }]);
    }
    if let Some(inner) = t.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
        let mut out = Vec::new();
        for entry in split_top(inner) {
            let (k, n) = entry.rsplit_once(':').ok_or_else(|| {
                format!("constraint entry {:?} is not \"…\": count", entry.trim())
            })?;
            let k = k.trim();
            let k = k
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .ok_or_else(|| format!("constraint key {k} must be a quoted string"))?;
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| format!("constraint count {:?} is not a number", n.trim()))?;
            if n == 0 {
                return Err(format!("constraint {k:?} needs a positive replica count"));
            }
            out.push(ConstraintConjunction {
                num_replicas: n,
                constraints: parse_list(k)?,
            });
        }
        return Ok(out);
    }
    Err(format!(
        "constraints {t:?} must be a list [+key=value, …] or a map {{\"+key=value\": count, …}}"
    ))
}

/// Parses `lease_preferences`: `[[+a=b], [+c=d, -e=f]]`.
pub fn parse_lease_preferences(text: &str) -> Result<Vec<Vec<Constraint>>, String> {
    let t = text.trim();
    let inner = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .ok_or_else(|| format!("lease_preferences {t:?} must be a list of lists [[…], …]"))?;
    split_top(inner)
        .into_iter()
        .map(|p| {
            let p = p.trim();
            let list = p
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .ok_or_else(|| format!("lease preference {p:?} must be a list [+key=value, …]"))?;
            parse_list(list)
        })
        .collect()
}

fn join(list: &[Constraint]) -> String {
    list.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text form of a `constraints` value (the inverse of
/// [`parse_constraints`]).
pub fn format_constraints(list: &[ConstraintConjunction]) -> String {
    match list {
        [] => "[]".into(),
        [one] if one.num_replicas == 0 => format!("[{}]", join(&one.constraints)),
        _ => {
            let entries: Vec<String> = list
                .iter()
                .map(|c| {
                    let keys: Vec<String> = c.constraints.iter().map(|k| k.to_string()).collect();
                    format!("\"{}\": {}", keys.join(","), c.num_replicas)
                })
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// The text form of `lease_preferences`.
pub fn format_lease_preferences(prefs: &[Vec<Constraint>]) -> String {
    let parts: Vec<String> = prefs.iter().map(|p| format!("[{}]", join(p))).collect();
    format!("[{}]", parts.join(", "))
}

/// A span config record: the span `[start, end)` and its zone, resolved up
/// to `RANGE default`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanConfig {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
    pub config: ZoneConfig,
}

impl SpanConfig {
    /// The stored value (the key is `span_config_key(start)`).
    pub fn encode_value(&self) -> Vec<u8> {
        let mut b = vec![FORMAT_VERSION];
        put_bytes(&mut b, &self.end);
        b.extend_from_slice(&self.config.encode());
        b
    }

    pub fn decode(start: Vec<u8>, value: &[u8]) -> Result<SpanConfig, DecodeError> {
        let mut r = ByteReader::new(value);
        if r.u8()? != FORMAT_VERSION {
            return Err(DecodeError("unknown span configuration format"));
        }
        let end = r.bytes()?;
        let rest = r.rest();
        Ok(SpanConfig {
            start,
            end,
            config: ZoneConfig::decode(rest)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn constraint_forms_round_trip() {
        for text in [
            "[]",
            "[+region=us-east1]",
            "[+region=us-east1, -zone=b]",
            "{\"+region=us-east1\": 2, \"+region=us-west1,-zone=a\": 1}",
        ] {
            let parsed = parse_constraints(text).expect(text);
            assert_eq!(format_constraints(&parsed), text);
        }
        let prefs = parse_lease_preferences("[[+region=a], [+region=b, -zone=c]]").expect("prefs");
        assert_eq!(prefs.len(), 2);
        assert_eq!(
            format_lease_preferences(&prefs),
            "[[+region=a], [+region=b, -zone=c]]"
        );
    }

    #[test]
    fn bad_constraints_are_refused() {
        for bad in [
            "region=a",
            "[region=a]",
            "[+region]",
            "{\"+region=a\": x}",
            "{\"+region=a\": 0}",
            "{+region=a: 1}",
            "+region=a",
        ] {
            assert!(parse_constraints(bad).is_err(), "{bad}");
        }
        assert!(parse_lease_preferences("[+region=a]").is_err());
    }

    #[test]
    fn constraints_match_localities() {
        let c = parse_constraints("[+region=us, -zone=b]").expect("parse");
        assert!(c[0].matches(&loc(&[("region", "us"), ("zone", "a")])));
        assert!(!c[0].matches(&loc(&[("region", "us"), ("zone", "b")])));
        assert!(!c[0].matches(&loc(&[("region", "eu"), ("zone", "a")])));
    }

    #[test]
    fn encoding_round_trips_and_inheritance_fills_unset_fields() {
        let mut z = ZoneConfig::default();
        z.set_field("num_replicas", Some("5")).expect("set");
        z.set_field("constraints", Some("{\"+region=a\": 2}"))
            .expect("set");
        z.set_field("lease_preferences", Some("[[+region=a]]"))
            .expect("set");
        assert_eq!(ZoneConfig::decode(&z.encode()).expect("decode"), z);
        assert_eq!(
            ZoneConfig::decode(&ZoneConfig::default().encode()).expect("decode"),
            ZoneConfig::default()
        );
        let mut full = z.clone();
        full.inherit_from(&ZoneConfig::builtin_default(3, 512 << 20));
        assert_eq!(full.num_replicas, Some(5));
        assert_eq!(full.gc_ttl_seconds, Some(DEFAULT_GC_TTL_SECONDS));
        assert!(full.validate().is_ok());
        let sc = SpanConfig {
            start: b"\x89".to_vec(),
            end: b"\x8a".to_vec(),
            config: z,
        };
        let back = SpanConfig::decode(sc.start.clone(), &sc.encode_value()).expect("decode");
        assert_eq!(back, sc);
        assert!(ZoneConfig::decode(&[1, 0xff]).is_err());
        assert!(ZoneConfig::decode(&[]).is_err());
    }

    #[test]
    fn validation_matches_cockroachdb() {
        let check = |fields: &[(&str, &str)]| {
            let mut z = ZoneConfig::builtin_default(3, 512 << 20);
            for (k, v) in fields {
                z.set_field(k, Some(v)).expect("set");
            }
            z.validate()
        };
        assert!(check(&[("num_replicas", "0")]).is_err());
        assert!(check(&[("num_voters", "5")]).is_err());
        assert!(check(&[("range_max_bytes", "1000")]).is_err());
        assert!(
            check(&[
                ("range_min_bytes", "1048576"),
                ("range_max_bytes", "1048576")
            ])
            .is_err()
        );
        assert!(check(&[("constraints", "{\"+region=a\": 4}")]).is_err());
        assert!(check(&[("num_replicas", "5"), ("constraints", "{\"+region=a\": 4}")]).is_ok());
        assert!(check(&[("gc.ttlseconds", "0")]).is_err());
    }
}
