//! Dates, timestamps and intervals: calendar arithmetic and PostgreSQL's text forms.
//!
//! Dates are days since 1970-01-01 and timestamps microseconds since
//! 1970-01-01 00:00:00 (UTC for TIMESTAMPTZ; the session time zone is UTC). The
//! proleptic Gregorian calendar is used; years ≤ 0 print as `… BC` like PostgreSQL.
//! `infinity`/`-infinity` are the extreme values of the representation.

use crate::error::codes;
use crate::{Interval, SqlError, SqlResult};

pub const USECS_PER_SEC: i64 = 1_000_000;
pub const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
pub const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
pub const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch for binary formats).
pub const PG_EPOCH_DAYS: i64 = 10_957;

pub const DATE_POS_INF: i32 = i32::MAX;
pub const DATE_NEG_INF: i32 = i32::MIN;
pub const TS_POS_INF: i64 = i64::MAX;
pub const TS_NEG_INF: i64 = i64::MIN;

/// Days since 1970-01-01 of a proleptic Gregorian date (year 0 = 1 BC).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

fn write_year(out: &mut String, y: i64) -> bool {
    use std::fmt::Write;
    let bc = y <= 0;
    let _ = write!(out, "{:04}", if bc { 1 - y } else { y });
    bc
}

/// `2024-01-02` (`0001-01-01 BC` before year 1).
pub fn write_date(out: &mut String, days: i32) {
    use std::fmt::Write;
    match days {
        DATE_POS_INF => return out.push_str("infinity"),
        DATE_NEG_INF => return out.push_str("-infinity"),
        _ => {}
    }
    let (y, m, d) = civil_from_days(i64::from(days));
    let bc = write_year(out, y);
    let _ = write!(out, "-{m:02}-{d:02}");
    if bc {
        out.push_str(" BC");
    }
}

fn write_time_of_day(out: &mut String, micros: i64) {
    use std::fmt::Write;
    let secs = micros / USECS_PER_SEC;
    let frac = micros % USECS_PER_SEC;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    write_fraction(out, frac);
}

/// TIME output: `03:04:05[.123456]` (`24:00:00` stays itself).
pub fn write_time(out: &mut String, micros: i64) {
    write_time_of_day(out, micros.clamp(0, USECS_PER_DAY));
}

/// PostgreSQL TIME input: `HH:MM[:SS[.ffffff]]`, `HHMMSS`, with an
/// optional `AM`/`PM`, a date before it and a time zone after it (both
/// ignored, as PostgreSQL does), or `allballs` (midnight).
pub fn parse_time(s: &str) -> SqlResult<i64> {
    let ty = "time without time zone";
    let t = s.trim();
    if t.eq_ignore_ascii_case("allballs") {
        return Ok(0);
    }
    if t.eq_ignore_ascii_case("now") {
        return Ok(now_micros().rem_euclid(USECS_PER_DAY));
    }
    let mut c = Cur {
        b: t.as_bytes(),
        i: 0,
    };
    // A date first (`2024-01-02 03:04:05`): skipped.
    let dated = t.len() > 10 && t.as_bytes().get(4) == Some(&b'-');
    if dated {
        parse_ymd(&mut c, s, ty)?;
        if !(c.eat(b'T') || c.eat(b't') || c.peek() == Some(b' ')) {
            return Err(bad(ty, s));
        }
        c.skip_ws();
    } else {
        let _ = c.eat(b'T') || c.eat(b't');
    }
    let mut tod = if c.rest().contains(':') {
        parse_hms(&mut c, s, ty)?
    } else {
        // HHMMSS[.ffffff]
        let (h, n) = c.digits(6).ok_or_else(|| bad(ty, s))?;
        if n != 6 && n != 4 {
            return Err(bad(ty, s));
        }
        let (h, m, sec) = if n == 6 {
            (h / 10000, (h / 100) % 100, h % 100)
        } else {
            (h / 100, h % 100, 0)
        };
        let frac = if c.eat(b'.') { parse_frac(&mut c) } else { 0 };
        if h > 24 || m > 59 || sec > 60 {
            return Err(out_of_range_field(s));
        }
        h * USECS_PER_HOUR + m * USECS_PER_MINUTE + sec * USECS_PER_SEC + frac
    };
    c.skip_ws();
    let rest = c.rest();
    let meridian = rest.get(..2).map(str::to_ascii_lowercase);
    if let Some(m @ ("am" | "pm")) = meridian.as_deref() {
        let hour = tod / USECS_PER_HOUR;
        if !(1..=12).contains(&hour) || tod >= 13 * USECS_PER_HOUR {
            return Err(out_of_range_field(s));
        }
        if hour == 12 {
            tod -= 12 * USECS_PER_HOUR;
        }
        if m == "pm" {
            tod += 12 * USECS_PER_HOUR;
        }
        c.i += 2;
        c.skip_ws();
    }
    if c.i != c.b.len() {
        parse_zone(&mut c, s, ty)?;
        c.skip_ws();
    }
    if c.i != c.b.len() {
        return Err(bad(ty, s));
    }
    if tod > USECS_PER_DAY {
        return Err(out_of_range_field(s));
    }
    Ok(tod)
}

fn write_fraction(out: &mut String, frac: i64) {
    if frac != 0 {
        let s = format!(".{:06}", frac.abs());
        out.push_str(s.trim_end_matches('0'));
    }
}

/// `2024-01-02 03:04:05.123456`, with `+00` appended for TIMESTAMPTZ.
pub fn write_timestamp(out: &mut String, micros: i64, tz: bool) {
    use std::fmt::Write;
    match micros {
        TS_POS_INF => return out.push_str("infinity"),
        TS_NEG_INF => return out.push_str("-infinity"),
        _ => {}
    }
    let days = micros.div_euclid(USECS_PER_DAY);
    let tod = micros.rem_euclid(USECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let bc = write_year(out, y);
    let _ = write!(out, "-{m:02}-{d:02} ");
    write_time_of_day(out, tod);
    if tz {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
}

/// PostgreSQL's default (`postgres`) interval style: `1 year 2 mons 3 days 04:05:06`.
pub fn write_interval(out: &mut String, iv: Interval) {
    use std::fmt::Write;
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |out: &mut String, v: i64, unit: &str| {
        if v == 0 {
            return;
        }
        let _ = write!(
            out,
            "{}{}{} {}{}",
            if is_zero { "" } else { " " },
            if is_before && v > 0 { "+" } else { "" },
            v,
            unit,
            if v != 1 { "s" } else { "" }
        );
        is_before = v < 0;
        is_zero = false;
    };
    let years = i64::from(iv.months) / 12;
    let mons = i64::from(iv.months) % 12;
    part(out, years, "year");
    part(out, mons, "mon");
    part(out, i64::from(iv.days), "day");
    let (zero, before) = if years == 0 && mons == 0 && iv.days == 0 {
        (true, false)
    } else {
        (
            false,
            [years, mons, i64::from(iv.days)]
                .iter()
                .rev()
                .find(|v| **v != 0)
                .is_some_and(|v| *v < 0),
        )
    };
    if zero || iv.micros != 0 {
        let minus = iv.micros < 0;
        let m = iv.micros.unsigned_abs();
        let secs = m / 1_000_000;
        let _ = write!(
            out,
            "{}{}{:02}:{:02}:{:02}",
            if zero { "" } else { " " },
            if minus {
                "-"
            } else if before {
                "+"
            } else {
                ""
            },
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
        write_fraction(out, (m % 1_000_000) as i64);
    }
}

fn bad(ty: &str, s: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type {ty}: \"{s}\""),
    )
}

fn out_of_range_field(s: &str) -> SqlError {
    SqlError::new(
        codes::DATETIME_FIELD_OVERFLOW,
        format!("date/time field value out of range: \"{s}\""),
    )
}

/// Current time in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A cursor over ASCII input.
struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn digits(&mut self, max: usize) -> Option<(i64, usize)> {
        let start = self.i;
        let mut v: i64 = 0;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() && self.i - start < max {
            v = v * 10 + i64::from(self.b[self.i] - b'0');
            self.i += 1;
        }
        (self.i > start).then_some((v, self.i - start))
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn rest(&self) -> &str {
        std::str::from_utf8(&self.b[self.i..]).unwrap_or("")
    }
}

/// Parses `YYYY-MM-DD` at the cursor; returns days since 1970-01-01.
fn parse_ymd(c: &mut Cur, orig: &str, ty: &str) -> SqlResult<i64> {
    let (y, ylen) = c.digits(8).ok_or_else(|| bad(ty, orig))?;
    let (y, m, d) = if ylen == 8 && c.peek() != Some(b'-') {
        (y / 10_000, (y / 100 % 100) as u32, (y % 100) as u32)
    } else {
        let sep = c.peek().ok_or_else(|| bad(ty, orig))?;
        if !matches!(sep, b'-' | b'/' | b'.') {
            return Err(bad(ty, orig));
        }
        c.i += 1;
        let (m, _) = c.digits(2).ok_or_else(|| bad(ty, orig))?;
        if !c.eat(sep) {
            return Err(bad(ty, orig));
        }
        let (d, _) = c.digits(2).ok_or_else(|| bad(ty, orig))?;
        (y, m as u32, d as u32)
    };
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) || y == 0 {
        return Err(out_of_range_field(orig));
    }
    Ok(days_from_civil(y, m, d))
}

/// `HH:MM[:SS[.ffffff]]` → microseconds.
fn parse_hms(c: &mut Cur, orig: &str, ty: &str) -> SqlResult<i64> {
    let (h, _) = c.digits(2).ok_or_else(|| bad(ty, orig))?;
    if !c.eat(b':') {
        return Err(bad(ty, orig));
    }
    let (mi, _) = c.digits(2).ok_or_else(|| bad(ty, orig))?;
    let mut s = 0;
    let mut frac = 0;
    if c.eat(b':') {
        s = c.digits(2).ok_or_else(|| bad(ty, orig))?.0;
        if c.eat(b'.') {
            frac = parse_frac(c);
        }
    }
    if h > 24 || mi > 59 || s > 60 || (h == 24 && (mi > 0 || s > 0 || frac > 0)) {
        return Err(out_of_range_field(orig));
    }
    Ok(h * USECS_PER_HOUR + mi * USECS_PER_MINUTE + s * USECS_PER_SEC + frac)
}

/// Fraction digits after a '.', rounded to microseconds.
fn parse_frac(c: &mut Cur) -> i64 {
    let mut v: i64 = 0;
    let mut n = 0;
    let mut round = false;
    while let Some(d) = c.peek().filter(|d| d.is_ascii_digit()) {
        if n < 6 {
            v = v * 10 + i64::from(d - b'0');
        } else if n == 6 {
            round = d >= b'5';
        }
        n += 1;
        c.i += 1;
    }
    while n < 6 {
        v *= 10;
        n += 1;
    }
    v + i64::from(round)
}

/// Optional time zone: `Z`, `UTC`, `+HH`, `+HH:MM`, `+HHMM`, `-…`; seconds east of UTC.
fn parse_zone(c: &mut Cur, orig: &str, ty: &str) -> SqlResult<Option<i64>> {
    c.skip_ws();
    let rest = c.rest().to_ascii_lowercase();
    if rest.starts_with('z') {
        c.i += 1;
        return Ok(Some(0));
    }
    for name in ["utc", "gmt"] {
        if rest.starts_with(name) {
            c.i += 3;
            return Ok(Some(0));
        }
    }
    let sign = match c.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Ok(None),
    };
    c.i += 1;
    let (v, len) = c.digits(4).ok_or_else(|| bad(ty, orig))?;
    let (h, mut m) = if len > 2 { (v / 100, v % 100) } else { (v, 0) };
    let mut s = 0;
    if len <= 2 && c.eat(b':') {
        m = c.digits(2).ok_or_else(|| bad(ty, orig))?.0;
        if c.eat(b':') {
            s = c.digits(2).ok_or_else(|| bad(ty, orig))?.0;
        }
    }
    if h > 15 || m > 59 {
        return Err(SqlError::new(
            codes::INVALID_DATETIME_FORMAT,
            format!("time zone displacement out of range: \"{orig}\""),
        ));
    }
    Ok(Some(sign * (h * 3600 + m * 60 + s)))
}

fn parse_bc(c: &mut Cur) -> bool {
    c.skip_ws();
    let r = c.rest().to_ascii_lowercase();
    if r.starts_with("bc") {
        c.i += 2;
        true
    } else {
        if r.starts_with("ad") {
            c.i += 2;
        }
        false
    }
}

/// Adjusts days for a BC year (year Y BC is astronomical year 1-Y).
fn bc_days(days: i64) -> i64 {
    let (y, m, d) = civil_from_days(days);
    days_from_civil(1 - y, m, d)
}

fn special(s: &str) -> Option<&'static str> {
    let t = s.trim().to_ascii_lowercase();
    Some(match t.as_str() {
        "infinity" | "+infinity" => "inf",
        "-infinity" => "-inf",
        "epoch" => "epoch",
        "now" => "now",
        "today" => "today",
        "tomorrow" => "tomorrow",
        "yesterday" => "yesterday",
        _ => return None,
    })
}

/// PostgreSQL date input: `2024-01-02`, `20240102`, `2024-01-02 BC`, `infinity`,
/// `epoch`, `today`; a trailing time is accepted and ignored.
pub fn parse_date(s: &str) -> SqlResult<i32> {
    if let Some(sp) = special(s) {
        let today = now_micros().div_euclid(USECS_PER_DAY) as i32;
        return Ok(match sp {
            "inf" => DATE_POS_INF,
            "-inf" => DATE_NEG_INF,
            "epoch" => 0,
            "tomorrow" => today + 1,
            "yesterday" => today - 1,
            _ => today,
        });
    }
    let t = s.trim();
    let mut c = Cur {
        b: t.as_bytes(),
        i: 0,
    };
    let mut days = parse_ymd(&mut c, s, "date")?;
    if c.eat(b'T') || c.peek() == Some(b' ') {
        c.skip_ws();
        if c.peek().is_some_and(|d| d.is_ascii_digit()) {
            parse_hms(&mut c, s, "date")?;
            parse_zone(&mut c, s, "date")?;
        }
    }
    if parse_bc(&mut c) {
        days = bc_days(days);
    }
    c.skip_ws();
    if c.i != c.b.len() {
        return Err(bad("date", s));
    }
    i32::try_from(days).map_err(|_| out_of_range_field(s))
}

/// PostgreSQL timestamp input; for TIMESTAMPTZ (`tz`) an offset converts to UTC, for
/// TIMESTAMP it is ignored, as PostgreSQL does.
pub fn parse_timestamp(s: &str, tz: bool) -> SqlResult<i64> {
    let ty = if tz {
        "timestamp with time zone"
    } else {
        "timestamp without time zone"
    };
    if let Some(sp) = special(s) {
        let now = now_micros();
        let today = now.div_euclid(USECS_PER_DAY) * USECS_PER_DAY;
        return Ok(match sp {
            "inf" => TS_POS_INF,
            "-inf" => TS_NEG_INF,
            "epoch" => 0,
            "now" => now,
            "tomorrow" => today + USECS_PER_DAY,
            "yesterday" => today - USECS_PER_DAY,
            _ => today,
        });
    }
    let t = s.trim();
    let mut c = Cur {
        b: t.as_bytes(),
        i: 0,
    };
    let mut days = parse_ymd(&mut c, s, ty)?;
    let mut tod = 0;
    let mut zone = None;
    if c.eat(b'T') || c.eat(b't') || c.peek() == Some(b' ') {
        c.skip_ws();
        if c.peek().is_some_and(|d| d.is_ascii_digit()) {
            tod = parse_hms(&mut c, s, ty)?;
        }
    }
    if c.peek()
        .is_some_and(|ch| ch != b' ' || !c.rest().trim().eq_ignore_ascii_case("bc"))
    {
        zone = parse_zone(&mut c, s, ty)?;
    }
    if parse_bc(&mut c) {
        days = bc_days(days);
    }
    c.skip_ws();
    if c.i != c.b.len() {
        return Err(bad(ty, s));
    }
    let mut micros = days
        .checked_mul(USECS_PER_DAY)
        .and_then(|v| v.checked_add(tod))
        .ok_or_else(timestamp_out_of_range)?;
    if let (true, Some(off)) = (tz, zone) {
        micros -= off * USECS_PER_SEC;
    }
    Ok(micros)
}

pub fn timestamp_out_of_range() -> SqlError {
    SqlError::new(codes::DATETIME_FIELD_OVERFLOW, "timestamp out of range")
}

/// Accumulates interval fields, spilling fractions down as PostgreSQL does.
#[derive(Default)]
struct IvAcc {
    months: f64,
    days: f64,
    micros: f64,
}

impl IvAcc {
    fn add(&mut self, v: f64, unit: &str) -> bool {
        match unit {
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "useconds" => {
                self.micros += v
            }
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "mseconds" => {
                self.micros += v * 1000.0
            }
            "second" | "seconds" | "s" | "sec" | "secs" => self.micros += v * 1e6,
            "minute" | "minutes" | "m" | "min" | "mins" => self.micros += v * 6e7,
            "hour" | "hours" | "h" | "hr" | "hrs" => self.micros += v * 3.6e9,
            "day" | "days" | "d" => self.spill_days(v),
            "week" | "weeks" | "w" => self.spill_days(v * 7.0),
            "month" | "months" | "mon" | "mons" => self.spill_months(v),
            "year" | "years" | "y" | "yr" | "yrs" => self.spill_months(v * 12.0),
            "decade" | "decades" => self.spill_months(v * 120.0),
            "century" | "centuries" => self.spill_months(v * 1200.0),
            "millennium" | "millennia" | "millenniums" => self.spill_months(v * 12000.0),
            _ => return false,
        }
        true
    }
    fn spill_days(&mut self, v: f64) {
        let whole = v.trunc();
        self.days += whole;
        self.micros += (v - whole) * 8.64e10;
    }
    fn spill_months(&mut self, v: f64) {
        let whole = v.trunc();
        self.months += whole;
        self.spill_days((v - whole) * 30.0);
    }
    fn finish(self, s: &str) -> SqlResult<Interval> {
        let range = || {
            SqlError::new(
                codes::DATETIME_FIELD_OVERFLOW,
                format!("interval field value out of range: \"{s}\""),
            )
        };
        let months = self.months.round();
        let days = self.days.round();
        let micros = self.micros.round();
        if months.abs() > f64::from(i32::MAX)
            || days.abs() > f64::from(i32::MAX)
            || micros.abs() > 9.2e18
        {
            return Err(range());
        }
        Ok(Interval {
            months: months as i32,
            days: days as i32,
            micros: micros as i64,
        })
    }
}

/// PostgreSQL interval input: `1 day`, `1 year 2 months`, `01:02:03`, `-1 day +02:00`,
/// `1.5 hours`, `3 days ago`, `@ 1 minute`, ISO 8601 `P1Y2M3DT4H5M6S`.
pub fn parse_interval(s: &str) -> SqlResult<Interval> {
    let err = || bad("interval", s);
    let t = s.trim();
    if t.is_empty() {
        return Err(err());
    }
    if let Some(iso) = t.strip_prefix('P').or_else(|| t.strip_prefix('p')) {
        return parse_iso_interval(iso, s);
    }
    let lower = t.to_ascii_lowercase();
    let mut acc = IvAcc::default();
    let mut toks: Vec<&str> = lower.split_whitespace().collect();
    if toks.first() == Some(&"@") {
        toks.remove(0);
    }
    let mut ago = false;
    if toks.last() == Some(&"ago") {
        toks.pop();
        ago = true;
    }
    let mut i = 0;
    let mut any = false;
    while i < toks.len() {
        let tok = toks[i];
        i += 1;
        if tok.contains(':') {
            let (neg, body) = match tok.as_bytes().first() {
                Some(b'-') => (true, &tok[1..]),
                Some(b'+') => (false, &tok[1..]),
                _ => (false, tok),
            };
            let parts: Vec<&str> = body.split(':').collect();
            if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
                return Err(err());
            }
            let h: f64 = parts[0].parse().map_err(|_| err())?;
            let m: f64 = parts[1].parse().map_err(|_| err())?;
            let sec: f64 = match parts.get(2) {
                Some(p) => p.parse().map_err(|_| err())?,
                None => 0.0,
            };
            if !parts[..parts.len() - 1]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(err());
            }
            let v = h * 3.6e9 + m * 6e7 + sec * 1e6;
            acc.micros += if neg { -v } else { v };
            any = true;
            continue;
        }
        // number, with the unit attached or as the next token
        let split = tok
            .find(|ch: char| ch.is_ascii_alphabetic())
            .unwrap_or(tok.len());
        let (num, unit) = tok.split_at(split);
        if num.is_empty() {
            return Err(err());
        }
        let v: f64 = num.parse().map_err(|_| err())?;
        let unit = if !unit.is_empty() {
            unit.to_owned()
        } else if i < toks.len() && toks[i].bytes().all(|b| b.is_ascii_alphabetic()) {
            i += 1;
            toks[i - 1].to_owned()
        } else {
            "second".to_owned()
        };
        if !acc.add(v, &unit) {
            return Err(err());
        }
        any = true;
    }
    if !any {
        return Err(err());
    }
    if ago {
        acc.months = -acc.months;
        acc.days = -acc.days;
        acc.micros = -acc.micros;
    }
    acc.finish(s)
}

fn parse_iso_interval(iso: &str, orig: &str) -> SqlResult<Interval> {
    let err = || bad("interval", orig);
    let mut acc = IvAcc::default();
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for ch in iso.chars() {
        match ch.to_ascii_uppercase() {
            'T' => in_time = true,
            c if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' => num.push(c),
            u => {
                let v: f64 = num.parse().map_err(|_| err())?;
                num.clear();
                let unit = match (u, in_time) {
                    ('Y', false) => "year",
                    ('M', false) => "month",
                    ('W', false) => "week",
                    ('D', false) => "day",
                    ('H', true) => "hour",
                    ('M', true) => "minute",
                    ('S', true) => "second",
                    _ => return Err(err()),
                };
                acc.add(v, unit);
                any = true;
            }
        }
    }
    if !num.is_empty() || !any {
        return Err(err());
    }
    acc.finish(orig)
}

/// Adds an interval to a timestamp (months first, clamping the day of month; then
/// days; then microseconds), as PostgreSQL's `timestamp_pl_interval` does.
pub fn add_interval(ts: i64, iv: Interval) -> SqlResult<i64> {
    if ts == TS_POS_INF || ts == TS_NEG_INF {
        return Ok(ts);
    }
    let mut days = ts.div_euclid(USECS_PER_DAY);
    let tod = ts.rem_euclid(USECS_PER_DAY);
    if iv.months != 0 {
        let (y, m, d) = civil_from_days(days);
        let total = y * 12 + i64::from(m) - 1 + i64::from(iv.months);
        let ny = total.div_euclid(12);
        let nm = (total.rem_euclid(12) + 1) as u32;
        let nd = d.min(days_in_month(ny, nm));
        days = days_from_civil(ny, nm, nd);
    }
    days += i64::from(iv.days);
    days.checked_mul(USECS_PER_DAY)
        .and_then(|v| v.checked_add(tod))
        .and_then(|v| v.checked_add(iv.micros))
        .filter(|v| *v != TS_POS_INF && *v != TS_NEG_INF)
        .ok_or_else(timestamp_out_of_range)
}

/// Negates an interval field by field.
pub fn neg_interval(iv: Interval) -> SqlResult<Interval> {
    Ok(Interval {
        months: iv.months.checked_neg().ok_or_else(interval_out_of_range)?,
        days: iv.days.checked_neg().ok_or_else(interval_out_of_range)?,
        micros: iv.micros.checked_neg().ok_or_else(interval_out_of_range)?,
    })
}

pub fn interval_out_of_range() -> SqlError {
    SqlError::new(codes::DATETIME_FIELD_OVERFLOW, "interval out of range")
}

/// An interval's total span in microseconds with months as 30 days (PostgreSQL's
/// interval comparison key).
pub fn interval_span(iv: Interval) -> i128 {
    i128::from(iv.months) * 30 * i128::from(USECS_PER_DAY)
        + i128::from(iv.days) * i128::from(USECS_PER_DAY)
        + i128::from(iv.micros)
}

/// `ts1 - ts2` as an interval of days and microseconds (PostgreSQL's
/// `timestamp_mi`, justified into days).
pub fn timestamp_diff(a: i64, b: i64) -> SqlResult<Interval> {
    let d = a.checked_sub(b).ok_or_else(interval_out_of_range)?;
    let days = d / USECS_PER_DAY;
    Ok(Interval {
        months: 0,
        days: i32::try_from(days).map_err(|_| interval_out_of_range())?,
        micros: d % USECS_PER_DAY,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for days in [-800_000i64, -1, 0, 1, 10_957, 19_724, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(19_724), (2024, 1, 2));
    }

    #[test]
    fn dates_print_and_parse_like_postgres() {
        let cases = [
            ("2024-01-02", "2024-01-02"),
            ("20240102", "2024-01-02"),
            ("1999-12-31", "1999-12-31"),
            ("0001-01-01 BC", "0001-01-01 BC"),
            ("2024-02-29", "2024-02-29"),
            ("infinity", "infinity"),
            ("2024-01-02 10:00:00", "2024-01-02"),
        ];
        for (input, want) in cases {
            let mut s = String::new();
            write_date(&mut s, parse_date(input).expect(input));
            assert_eq!(s, want, "{input}");
        }
        assert_eq!(parse_date("2023-02-29").expect_err("bad").code, "22008");
        assert_eq!(parse_date("garbage").expect_err("bad").code, "22007");
    }

    #[test]
    fn timestamps_print_and_parse_like_postgres() {
        let cases = [
            ("2024-01-02 03:04:05", false, "2024-01-02 03:04:05"),
            (
                "2024-01-02 03:04:05.123456",
                false,
                "2024-01-02 03:04:05.123456",
            ),
            ("2024-01-02 03:04:05.120", false, "2024-01-02 03:04:05.12"),
            ("2024-01-02T03:04:05Z", true, "2024-01-02 03:04:05+00"),
            ("2024-01-02 03:04:05+02", true, "2024-01-02 01:04:05+00"),
            ("2024-01-02 03:04:05-05:30", true, "2024-01-02 08:34:05+00"),
            ("2024-01-02 03:04:05+02", false, "2024-01-02 03:04:05"),
            ("2024-01-02", false, "2024-01-02 00:00:00"),
            ("1969-12-31 23:59:59.5", false, "1969-12-31 23:59:59.5"),
        ];
        for (input, tz, want) in cases {
            let mut s = String::new();
            write_timestamp(&mut s, parse_timestamp(input, tz).expect(input), tz);
            assert_eq!(s, want, "{input}");
        }
    }

    #[test]
    fn intervals_print_and_parse_like_postgres() {
        let cases = [
            ("1 day", "1 day"),
            (
                "1 year 2 months 3 days 04:05:06",
                "1 year 2 mons 3 days 04:05:06",
            ),
            ("01:02:03", "01:02:03"),
            ("-1 day -2 hours", "-1 days -02:00:00"),
            ("1 day -1 second", "1 day -00:00:01"),
            ("-1 day 1 hour", "-1 days +01:00:00"),
            ("1.5 hours", "01:30:00"),
            ("1.5 days", "1 day 12:00:00"),
            ("1.5 months", "1 mon 15 days"),
            ("2 weeks", "14 days"),
            ("3 days ago", "-3 days"),
            ("P1Y2M3DT4H5M6S", "1 year 2 mons 3 days 04:05:06"),
            ("0 seconds", "00:00:00"),
            ("100 hours", "100:00:00"),
            ("1 second 500 milliseconds", "00:00:01.5"),
            ("10", "00:00:10"),
        ];
        for (input, want) in cases {
            let mut s = String::new();
            write_interval(&mut s, parse_interval(input).expect(input));
            assert_eq!(s, want, "{input}");
        }
        assert_eq!(
            parse_interval("1 fortnight").expect_err("bad").code,
            "22007"
        );
    }

    #[test]
    fn adding_months_clamps_the_day() {
        let jan31 = parse_timestamp("2024-01-31", false).expect("ts");
        let r = add_interval(
            jan31,
            Interval {
                months: 1,
                days: 0,
                micros: 0,
            },
        )
        .expect("add");
        let mut s = String::new();
        write_timestamp(&mut s, r, false);
        assert_eq!(s, "2024-02-29 00:00:00");
    }
}
