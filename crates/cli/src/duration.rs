//! A tiny humantime-style duration parser: `30s`, `2m`, `500ms`, `1h30m`.

use std::time::Duration;

const UNITS: &str = "ns, us, ms, s, m, h";

/// Parses one or more `<integer><unit>` terms (units: ns, us/µs, ms, s, m, h).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration (try 30s, 2m or 500ms)".into());
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a whole number at {rest:?} (try 30s, 2m, 500ms, 1h30m)"
            ));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos_per: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit after {n} (units: {UNITS})"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (units: {UNITS})"
                ));
            }
        };
        total = n
            .checked_mul(nanos_per)
            .and_then(|t| total.checked_add(t))
            .ok_or_else(|| format!("invalid duration {text:?}: too long"))?;
        rest = &rest[unit_len..];
    }
    let nanos = u64::try_from(total).map_err(|_| format!("invalid duration {text:?}: too long"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let ok = |s: &str| parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("250µs"), Duration::from_micros(250));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok(" 0s "), Duration::ZERO);
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        let err = |s: &str| match parse_duration(s) {
            Ok(d) => panic!("{s:?} parsed as {d:?}"),
            Err(e) => e,
        };
        assert!(err("").contains("empty"));
        assert!(err("30").contains("missing unit"));
        assert!(err("30x").contains("unknown unit \"x\""));
        assert!(err("s").contains("expected a whole number"));
        assert!(err("-5s").contains("expected a whole number"));
        assert!(err("1.5s").contains("unknown unit"));
        assert!(err("5 s").contains("unknown unit"));
        assert!(err("99999999999999999999h").contains("too long"));
        assert!(err("999999999999999999999999999999999999999999s").contains("too large"));
    }
}
