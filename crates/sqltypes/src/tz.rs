//! Time zones, as `AT TIME ZONE` and `timezone(zone, ts)` read them: a zone
//! name from the system's time zone database (`/usr/share/zoneinfo`, or
//! `$TZDIR`), a POSIX-style specification (`UTC+3`, `EST5EDT,M3.2.0,M11.1.0`,
//! `-05:30`), or an interval (`INTERVAL '-08:00'`).
//!
//! Names are matched without regard to case, as PostgreSQL matches them.
//! POSIX offsets count hours **west** of Greenwich (`'+05'` is five hours
//! behind UTC), as in PostgreSQL; an interval counts east. A zone file is
//! read once per process and kept ([`zone`]); its transitions give the
//! offset up to the last one, and the POSIX rule at its end after that (so
//! future daylight-saving changes follow the rule the database states).
//!
//! TODO(issue 13): the session's `TimeZone` setting (every session is UTC),
//! PostgreSQL's time zone abbreviations (`PST`, `CEST`), and `TIMETZ`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::datetime::{USECS_PER_SEC, civil_from_days, days_from_civil};
use crate::error::codes;
use crate::{Interval, SqlError, SqlResult};

/// A time zone: a fixed offset, or the rules of a zone of the database.
#[derive(Clone, Debug)]
pub enum Zone {
    /// Seconds east of UTC.
    Fixed(i64),
    /// A POSIX rule (standard and daylight offsets with their switch dates).
    Rule(Arc<PosixRule>),
    /// A zone file's history and its closing rule.
    File(Arc<ZoneFile>),
}

impl Zone {
    /// The offset from UTC (seconds east) at the instant `utc_micros`.
    pub fn offset_at(&self, utc_micros: i64) -> i64 {
        let secs = utc_micros.div_euclid(USECS_PER_SEC);
        match self {
            Zone::Fixed(off) => *off,
            Zone::Rule(rule) => rule.offset_at(secs),
            Zone::File(file) => file.offset_at(secs),
        }
    }

    /// The instant (microseconds since the epoch, UTC) of a local wall-clock
    /// time in this zone. A time that happens twice (clocks go back) is the
    /// later instant, a time that does not happen (clocks go forward) is
    /// read with the offset before the change: PostgreSQL resolves both to
    /// standard time that way.
    pub fn utc_of_local(&self, local_micros: i64) -> i64 {
        const DAY: i64 = 86_400 * USECS_PER_SEC;
        let before = self.offset_at(local_micros.saturating_sub(DAY));
        let after = self.offset_at(local_micros.saturating_add(DAY));
        let instant = |off: i64| local_micros.saturating_sub(off.saturating_mul(USECS_PER_SEC));
        let holds = |off: i64| self.offset_at(instant(off)) == off;
        match (holds(before), holds(after)) {
            (true, true) => instant(before).max(instant(after)),
            (false, true) => instant(after),
            _ => instant(before),
        }
    }
}

/// 22023 `time zone "x" not recognized`.
fn unknown(name: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_PARAMETER_VALUE,
        format!("time zone \"{name}\" not recognized"),
    )
}

/// The zone an `AT TIME ZONE` text names.
pub fn zone(name: &str) -> SqlResult<Zone> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(unknown(name));
    }
    let lower = trimmed.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "utc" | "gmt" | "z" | "zulu" | "uct" | "universal" | "etc/utc" | "etc/gmt" | "etc/uct"
    ) {
        return Ok(Zone::Fixed(0));
    }
    // A bare offset (`+05`, `-3:30`) is a POSIX offset without a name.
    if trimmed.starts_with(['+', '-']) || trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        let mut p = Cursor::new(trimmed);
        let west = p.offset().ok_or_else(|| unknown(name))?;
        if !p.done() {
            return Err(unknown(name));
        }
        return Ok(Zone::Fixed(-west));
    }
    if let Some(file) = cached_file(trimmed) {
        return Ok(Zone::File(file));
    }
    match PosixRule::parse(trimmed) {
        Some(rule) if rule.dst.is_none() => Ok(Zone::Fixed(rule.std_east)),
        Some(rule) => Ok(Zone::Rule(Arc::new(rule))),
        None => Err(unknown(name)),
    }
}

/// The zone of an interval offset (`AT TIME ZONE INTERVAL '-08:00'`), east
/// of UTC; months and days are refused as PostgreSQL refuses them.
pub fn zone_of_interval(iv: Interval) -> SqlResult<Zone> {
    if iv.months != 0 || iv.days != 0 {
        let mut text = String::new();
        crate::datetime::write_interval(&mut text, iv);
        return Err(SqlError::new(
            codes::INVALID_PARAMETER_VALUE,
            format!("interval time zone \"{text}\" must not include months or days"),
        ));
    }
    Ok(Zone::Fixed(iv.micros.div_euclid(USECS_PER_SEC)))
}

fn zone_dir() -> PathBuf {
    std::env::var_os("TZDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/zoneinfo"))
}

/// The zone file named `name` (case-insensitively), read once.
fn cached_file(name: &str) -> Option<Arc<ZoneFile>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Arc<ZoneFile>>>>> = OnceLock::new();
    let key = name.to_ascii_lowercase();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = cache.lock().ok()?.get(&key) {
        return found.clone();
    }
    let found = find_file(&zone_dir(), name)
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| ZoneFile::parse(&bytes))
        .map(Arc::new);
    if let Ok(mut c) = cache.lock() {
        // Bounded: names that are not zones are not kept past a few.
        if found.is_some() || c.len() < 1024 {
            c.insert(key, found.clone());
        }
    }
    found
}

/// The path of zone `name` under `dir`, each component matched without
/// regard to case; `None` for a name that could leave the directory.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut path = dir.to_path_buf();
    for part in name.split('/') {
        if part.is_empty()
            || part == "."
            || part == ".."
            || !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        {
            return None;
        }
        let exact = path.join(part);
        if exact.exists() {
            path = exact;
            continue;
        }
        let entry = std::fs::read_dir(&path).ok()?.flatten().find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(part))
        })?;
        path = entry.path();
    }
    path.is_file().then_some(path)
}

/// A zone file (RFC 8536 "TZif"): its transitions and the rule after them.
#[derive(Debug)]
pub struct ZoneFile {
    /// Transition instants, seconds since the epoch (UTC), ascending.
    transitions: Vec<i64>,
    /// The offset (seconds east) from each transition on.
    offsets: Vec<i64>,
    /// The offset before the first transition.
    initial: i64,
    /// The rule for instants after the last transition.
    rule: Option<PosixRule>,
}

impl ZoneFile {
    fn offset_at(&self, secs: i64) -> i64 {
        match self.transitions.partition_point(|&t| t <= secs) {
            0 => self.initial,
            n if n == self.transitions.len() => match &self.rule {
                Some(rule) => rule.offset_at(secs),
                None => self.offsets[n - 1],
            },
            n => self.offsets[n - 1],
        }
    }

    /// Parses a TZif file (versions 1 to 4; the 64-bit block when present).
    /// `None` for anything malformed.
    fn parse(bytes: &[u8]) -> Option<ZoneFile> {
        let header = Header::read(bytes)?;
        let (header, data, time_size) = if header.version >= b'2' {
            let v2 = bytes.get(header.v1_len(4)..)?;
            (Header::read(v2)?, v2.get(44..)?, 8)
        } else {
            (header, bytes.get(44..)?, 4)
        };
        let mut r = Bytes(data);
        let mut transitions = Vec::with_capacity(header.timecnt);
        for _ in 0..header.timecnt {
            transitions.push(if time_size == 8 {
                i64::from_be_bytes(r.take(8)?.try_into().ok()?)
            } else {
                i64::from(i32::from_be_bytes(r.take(4)?.try_into().ok()?))
            });
        }
        let indices = r.take(header.timecnt)?.to_vec();
        let mut types = Vec::with_capacity(header.typecnt);
        for _ in 0..header.typecnt {
            let info = r.take(6)?;
            let utoff = i32::from_be_bytes(info[..4].try_into().ok()?);
            types.push((i64::from(utoff), info[4] != 0));
        }
        if types.is_empty() {
            return None;
        }
        let offsets = indices
            .iter()
            .map(|&i| types.get(usize::from(i)).map(|t| t.0))
            .collect::<Option<Vec<_>>>()?;
        // Before the first transition: the first standard-time type.
        let initial = types.iter().find(|t| !t.1).unwrap_or(&types[0]).0;
        let rule = if time_size == 8 {
            r.take(header.charcnt + header.leapcnt * 12 + header.isstdcnt + header.isutcnt)?;
            let footer = std::str::from_utf8(r.0).ok()?;
            let spec = footer.trim_matches('\n');
            (!spec.is_empty()).then(|| PosixRule::parse(spec)).flatten()
        } else {
            None
        };
        Some(ZoneFile {
            transitions,
            offsets,
            initial,
            rule,
        })
    }
}

struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn read(b: &[u8]) -> Option<Header> {
        if b.get(..4)? != b"TZif" {
            return None;
        }
        let count = |i: usize| -> Option<usize> {
            let v = u32::from_be_bytes(b.get(20 + 4 * i..24 + 4 * i)?.try_into().ok()?);
            // A zone has a few thousand transitions at most.
            (v < 1 << 20).then_some(v as usize)
        };
        Some(Header {
            version: *b.get(4)?,
            isutcnt: count(0)?,
            isstdcnt: count(1)?,
            leapcnt: count(2)?,
            timecnt: count(3)?,
            typecnt: count(4)?,
            charcnt: count(5)?,
        })
    }

    /// The length of the header and data block with `time_size`-byte times.
    fn v1_len(&self, time_size: usize) -> usize {
        44 + self.timecnt * time_size
            + self.timecnt
            + self.typecnt * 6
            + self.charcnt
            + self.leapcnt * (time_size + 4)
            + self.isstdcnt
            + self.isutcnt
    }
}

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
}

/// A POSIX TZ rule (`CET-1CEST,M3.5.0,M10.5.0/3`): a standard offset, and
/// optionally a daylight offset with the days it starts and ends.
#[derive(Debug)]
pub struct PosixRule {
    /// Seconds east of UTC in standard time.
    std_east: i64,
    /// Daylight time: (seconds east, start, end).
    dst: Option<(i64, SwitchDay, SwitchDay)>,
}

/// `Mm.w.d/time`: day `d` (0 = Sunday) of week `w` (5 = last) of month `m`,
/// at `time` seconds after local midnight.
#[derive(Debug, Clone, Copy)]
struct SwitchDay {
    month: u32,
    week: u32,
    weekday: u32,
    time: i64,
}

impl SwitchDay {
    /// Local seconds since the epoch of the switch in `year`.
    fn local_secs(&self, year: i64) -> i64 {
        let first = days_from_civil(year, self.month, 1);
        // 1970-01-01 was a Thursday (4).
        let first_weekday = (first + 4).rem_euclid(7) as u32;
        let mut day = first + i64::from((self.weekday + 7 - first_weekday) % 7);
        day += 7 * i64::from(self.week.saturating_sub(1));
        let month_days = crate::datetime::days_in_month(year, self.month);
        while day >= first + i64::from(month_days) {
            day -= 7;
        }
        day * 86_400 + self.time
    }
}

impl PosixRule {
    fn offset_at(&self, secs: i64) -> i64 {
        let Some((dst_east, start, end)) = &self.dst else {
            return self.std_east;
        };
        let (year, _, _) = civil_from_days((secs + self.std_east).div_euclid(86_400));
        // The start is given in standard time, the end in daylight time.
        let begins = start.local_secs(year) - self.std_east;
        let ends = end.local_secs(year) - dst_east;
        let daylight = if begins < ends {
            secs >= begins && secs < ends
        } else {
            secs < ends || secs >= begins
        };
        if daylight { *dst_east } else { self.std_east }
    }

    fn parse(spec: &str) -> Option<PosixRule> {
        let mut p = Cursor::new(spec);
        p.name()?;
        let std_east = -p.offset()?;
        if p.done() {
            return Some(PosixRule {
                std_east,
                dst: None,
            });
        }
        p.name()?;
        let dst_east = if p.peek().is_some_and(|c| c != ',') {
            -p.offset()?
        } else {
            std_east + 3600
        };
        if p.done() {
            // No switch dates: the US rules, as POSIX defaults them.
            let start = SwitchDay {
                month: 3,
                week: 2,
                weekday: 0,
                time: 7200,
            };
            let end = SwitchDay {
                month: 11,
                week: 1,
                weekday: 0,
                time: 7200,
            };
            return Some(PosixRule {
                std_east,
                dst: Some((dst_east, start, end)),
            });
        }
        p.eat(',')?;
        let start = p.switch_day()?;
        p.eat(',')?;
        let end = p.switch_day()?;
        p.done().then_some(PosixRule {
            std_east,
            dst: Some((dst_east, start, end)),
        })
    }
}

/// A reader over a POSIX TZ specification.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Cursor<'a> {
        Cursor {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.s.get(self.i).map(|&b| b as char)
    }

    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn eat(&mut self, c: char) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// A zone abbreviation: `<+0330>` or three or more letters.
    fn name(&mut self) -> Option<()> {
        if self.eat('<').is_some() {
            while self.peek()? != '>' {
                self.i += 1;
            }
            self.i += 1;
            return Some(());
        }
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        (self.i - start >= 3).then_some(())
    }

    fn number(&mut self) -> Option<i64> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i == start || self.i - start > 3 {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    /// `[+-]hh[:mm[:ss]]` in seconds (as written: POSIX counts west).
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.peek() {
            Some('-') => {
                self.i += 1;
                -1
            }
            Some('+') => {
                self.i += 1;
                1
            }
            _ => 1,
        };
        let hours = self.number()?;
        if hours > 167 {
            return None;
        }
        let mut secs = hours * 3600;
        if self.eat(':').is_some() {
            let minutes = self.number()?;
            if minutes > 59 {
                return None;
            }
            secs += minutes * 60;
            if self.eat(':').is_some() {
                let s = self.number()?;
                if s > 59 {
                    return None;
                }
                secs += s;
            }
        }
        Some(sign * secs)
    }

    /// `Mm.w.d[/time]` (the Julian-day forms are not read).
    fn switch_day(&mut self) -> Option<SwitchDay> {
        self.eat('M')?;
        let month = u32::try_from(self.number()?).ok()?;
        self.eat('.')?;
        let week = u32::try_from(self.number()?).ok()?;
        self.eat('.')?;
        let weekday = u32::try_from(self.number()?).ok()?;
        if !(1..=12).contains(&month) || !(1..=5).contains(&week) || weekday > 6 {
            return None;
        }
        let time = if self.eat('/').is_some() {
            self.offset()?
        } else {
            7200
        };
        Some(SwitchDay {
            month,
            week,
            weekday,
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;

    fn at(y: i64, m: u32, d: u32, h: i64) -> i64 {
        (days_from_civil(y, m, d) * 86_400 + h * HOUR) * USECS_PER_SEC
    }

    #[test]
    fn utc_names_and_posix_offsets() {
        for n in ["UTC", "utc", "GMT", "Z", "Etc/UTC"] {
            assert_eq!(zone(n).expect(n).offset_at(0), 0, "{n}");
        }
        // POSIX counts west: '+05' is five hours behind UTC.
        assert_eq!(zone("+05").expect("+05").offset_at(0), -5 * HOUR);
        assert_eq!(
            zone("-03:30").expect("-03:30").offset_at(0),
            3 * HOUR + 1800
        );
        assert_eq!(zone("UTC+3").expect("UTC+3").offset_at(0), -3 * HOUR);
        for bad in [
            "",
            "Mars/Olympus",
            "../../etc/passwd",
            "+",
            "/etc/passwd",
            "+05:99",
        ] {
            assert!(zone(bad).is_err(), "{bad:?} should not be a zone");
        }
    }

    #[test]
    fn posix_rules_switch_on_their_days() {
        let z = zone("EST5EDT,M3.2.0,M11.1.0").expect("rule");
        assert!(matches!(z, Zone::Rule(_)));
        // 2024: DST from 2024-03-10 07:00 UTC to 2024-11-03 06:00 UTC.
        let cases = [
            (at(2024, 3, 10, 6), -5),
            (at(2024, 3, 10, 7), -4),
            (at(2024, 11, 3, 5), -4),
            (at(2024, 11, 3, 6), -5),
        ];
        for (instant, hours) in cases {
            assert_eq!(z.offset_at(instant), hours * HOUR, "at {instant}");
        }
        // The southern hemisphere: daylight time spans the new year.
        let z = zone("AEST-10AEDT,M10.1.0,M4.1.0/3").expect("rule");
        assert_eq!(z.offset_at(at(2024, 1, 15, 0)), 11 * HOUR);
        assert_eq!(z.offset_at(at(2024, 7, 15, 0)), 10 * HOUR);
    }

    #[test]
    fn interval_zones_count_east() {
        let iv = Interval {
            months: 0,
            days: 0,
            micros: -8 * HOUR * USECS_PER_SEC,
        };
        assert_eq!(zone_of_interval(iv).expect("zone").offset_at(0), -8 * HOUR);
        assert!(
            zone_of_interval(Interval {
                months: 1,
                days: 0,
                micros: 0
            })
            .is_err()
        );
    }

    #[test]
    fn zone_files_give_history_and_future() {
        // Skipped where the system has no time zone database.
        if !zone_dir().join("America/New_York").exists() {
            return;
        }
        let z = zone("america/new_york").expect("New York");
        assert_eq!(z.offset_at(at(2021, 1, 15, 12)), -5 * HOUR);
        assert_eq!(z.offset_at(at(2021, 7, 15, 12)), -4 * HOUR);
        // Past the file's last transition, its rule decides.
        assert_eq!(z.offset_at(at(2090, 7, 15, 12)), -4 * HOUR);
        assert_eq!(z.offset_at(at(2090, 12, 15, 12)), -5 * HOUR);
        // A local time that does not exist (clocks jump 02:00 → 03:00) is
        // read in standard time; one that happens twice (01:00 → 02:00
        // again) is the later, standard-time instant, as in PostgreSQL.
        let local = at(2021, 3, 14, 2) + 30 * 60 * USECS_PER_SEC;
        assert_eq!(z.utc_of_local(local), local + 5 * HOUR * USECS_PER_SEC);
        let local = at(2021, 11, 7, 1) + 30 * 60 * USECS_PER_SEC;
        assert_eq!(z.utc_of_local(local), local + 5 * HOUR * USECS_PER_SEC);
        let local = at(2021, 7, 1, 12);
        assert_eq!(z.utc_of_local(local), local + 4 * HOUR * USECS_PER_SEC);
        let kolkata = zone("Asia/Kolkata").expect("Kolkata");
        assert_eq!(kolkata.offset_at(at(2020, 1, 1, 0)), 5 * HOUR + 1800);
    }
}
