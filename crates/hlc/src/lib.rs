//! Hybrid logical clocks.
//!
//! Every timestamp in Tardigrade is an HLC timestamp: a physical wall time in
//! nanoseconds plus a logical counter that orders events sharing a wall time.
//! The [`Hlc`] advances on every local event ([`Hlc::now`]) and on every
//! timestamp received from another node ([`Hlc::update`]); a remote timestamp
//! further in the future than the maximum clock offset is refused, because a
//! node whose clock is that far off would break the uncertainty interval that
//! reads rely on.
//!
//! Wall time is read only through the [`Clock`] seam, so that tests can skew,
//! pause and jump clocks with [`ManualClock`]. Tests of real processes (the
//! nemesis suite) jump a node's clock through [`physical_clock_from_env`]: when
//! [`CLOCK_OFFSET_FILE_ENV`] names a file, its content (signed milliseconds) is
//! added to the system time, re-read every [`OFFSET_FILE_POLL`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

/// Default maximum clock offset between any two nodes of a cluster.
pub const DEFAULT_MAX_OFFSET: Duration = Duration::from_millis(500);

/// An HLC timestamp. Ordered by wall time, then logical counter.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Nanoseconds since the Unix epoch.
    pub wall: i64,
    /// Orders events within the same nanosecond.
    pub logical: i32,
}

impl Timestamp {
    /// The zero timestamp: "no timestamp" / unversioned.
    pub const ZERO: Timestamp = Timestamp {
        wall: 0,
        logical: 0,
    };
    /// The largest timestamp.
    pub const MAX: Timestamp = Timestamp {
        wall: i64::MAX,
        logical: i32::MAX,
    };

    pub const fn new(wall: i64, logical: i32) -> Self {
        Timestamp { wall, logical }
    }

    pub fn is_zero(self) -> bool {
        self == Timestamp::ZERO
    }

    /// The smallest timestamp greater than `self`.
    pub fn next(self) -> Timestamp {
        if self.logical == i32::MAX {
            Timestamp::new(self.wall.saturating_add(1), 0)
        } else {
            Timestamp::new(self.wall, self.logical + 1)
        }
    }

    /// The largest timestamp smaller than `self` (saturating at zero).
    pub fn prev(self) -> Timestamp {
        if self.logical > 0 {
            Timestamp::new(self.wall, self.logical - 1)
        } else if self.wall > 0 {
            Timestamp::new(self.wall - 1, i32::MAX)
        } else {
            Timestamp::ZERO
        }
    }

    /// `self` advanced by `d` of wall time, logical reset.
    pub fn add_duration(self, d: Duration) -> Timestamp {
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Timestamp::new(self.wall.saturating_add(nanos), 0)
    }

    /// Raises `self` to at least `other`.
    pub fn forward(&mut self, other: Timestamp) -> bool {
        if other > *self {
            *self = other;
            true
        } else {
            false
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Timestamp {
    /// CockroachDB style: `seconds.nanoseconds,logical`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.wall.div_euclid(1_000_000_000);
        let nanos = self.wall.rem_euclid(1_000_000_000);
        write!(f, "{secs}.{nanos:09},{}", self.logical)
    }
}

/// The source of physical time. Only the HLC reads it.
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> i64;
}

/// The operating system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_nanos(&self) -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// A clock that moves only when told to; for tests that skew, freeze or jump time.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicI64,
}

impl ManualClock {
    pub fn new(nanos: i64) -> Arc<Self> {
        Arc::new(ManualClock {
            nanos: AtomicI64::new(nanos),
        })
    }

    pub fn set(&self, nanos: i64) {
        self.nanos.store(nanos, Ordering::SeqCst);
    }

    pub fn advance(&self, d: Duration) {
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        self.nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> i64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

/// A wrapper that adds a fixed offset to another clock: simulated clock skew.
pub struct SkewedClock<C: Clock> {
    pub inner: C,
    pub offset_nanos: AtomicI64,
}

impl<C: Clock> Clock for SkewedClock<C> {
    fn now_nanos(&self) -> i64 {
        self.inner
            .now_nanos()
            .saturating_add(self.offset_nanos.load(Ordering::Relaxed))
    }
}

/// Testing seam: the environment variable naming a file whose content, a
/// signed number of milliseconds, is added to the node's system clock.
/// Never set it in production.
pub const CLOCK_OFFSET_FILE_ENV: &str = "TARDIGRADE_TESTING_CLOCK_OFFSET_FILE";

/// The system clock, or with [`CLOCK_OFFSET_FILE_ENV`] set, the system
/// clock offset by that file (testing only; says so on stderr).
pub fn physical_clock_from_env() -> Arc<dyn Clock> {
    match std::env::var_os(CLOCK_OFFSET_FILE_ENV) {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            eprintln!(
                "warning: {CLOCK_OFFSET_FILE_ENV} is set: this node's clock is offset by the milliseconds in {} (testing only)",
                path.display()
            );
            offset_file_clock(&path)
        }
        _ => Arc::new(SystemClock),
    }
}

/// How often the clock offset file is re-read.
pub const OFFSET_FILE_POLL: Duration = Duration::from_millis(100);

/// Parses the clock offset file's content: signed milliseconds, surrounding
/// whitespace ignored.
pub fn parse_offset_millis(text: &str) -> Result<i64, String> {
    let t = text.trim();
    t.parse::<i64>()
        .map_err(|e| format!("clock offset {t:?} is not a signed number of milliseconds: {e}"))
}

/// The system clock offset by the milliseconds in a file, re-read every
/// [`OFFSET_FILE_POLL`] by a background thread that ends with the clock. A
/// missing or unreadable file keeps the last offset (0 at first), so that a
/// test writing the file non-atomically never makes the clock jump to 0.
pub fn offset_file_clock(path: &Path) -> Arc<SkewedClock<SystemClock>> {
    let clock = Arc::new(SkewedClock {
        inner: SystemClock,
        offset_nanos: AtomicI64::new(0),
    });
    apply_offset_file(&clock, path);
    let weak: Weak<SkewedClock<SystemClock>> = Arc::downgrade(&clock);
    let path: PathBuf = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("clock-offset-file".into())
        .spawn(move || {
            loop {
                std::thread::sleep(OFFSET_FILE_POLL);
                let Some(clock) = weak.upgrade() else { return };
                apply_offset_file(&clock, &path);
            }
        });
    if let Err(e) = spawned {
        eprintln!("warning: cannot watch the clock offset file: {e}");
    }
    clock
}

fn apply_offset_file(clock: &SkewedClock<SystemClock>, path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    if let Ok(ms) = parse_offset_millis(&text) {
        clock
            .offset_nanos
            .store(ms.saturating_mul(1_000_000), Ordering::Relaxed);
    }
}

/// A remote timestamp was further ahead of our clock than the maximum offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "remote wall time {remote} is {ahead_ms} ms ahead of local clock, more than the maximum offset of {max_offset_ms} ms"
)]
pub struct ClockOffsetError {
    pub remote: Timestamp,
    pub ahead_ms: i64,
    pub max_offset_ms: i64,
}

/// A hybrid logical clock.
pub struct Hlc {
    clock: Arc<dyn Clock>,
    max_offset: Duration,
    last: Mutex<Timestamp>,
    /// The latest physical time read so far.
    max_physical: AtomicI64,
    /// The largest backward jump of physical time seen beyond the maximum
    /// offset (0: never).
    jumped_back_nanos: AtomicI64,
}

impl Hlc {
    pub fn new(clock: Arc<dyn Clock>, max_offset: Duration) -> Self {
        Hlc {
            clock,
            max_offset,
            last: Mutex::new(Timestamp::ZERO),
            max_physical: AtomicI64::new(i64::MIN),
            jumped_back_nanos: AtomicI64::new(0),
        }
    }

    /// An HLC over the system clock with the default maximum offset.
    pub fn system() -> Self {
        Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET)
    }

    pub fn max_offset(&self) -> Duration {
        self.max_offset
    }

    /// Physical time as seen by this node's clock, without advancing the HLC.
    pub fn physical_now(&self) -> i64 {
        self.clock.now_nanos()
    }

    /// A timestamp greater than every timestamp this clock has returned or seen.
    pub fn now(&self) -> Timestamp {
        let physical = self.read_physical();
        let mut last = self.last.lock();
        if physical > last.wall {
            *last = Timestamp::new(physical, 0);
        } else {
            *last = last.next();
        }
        *last
    }

    /// Reads the physical clock, latching a jump back beyond the maximum
    /// offset. A jump back within it is tolerated as an offset would be
    /// (reads' uncertainty covers it), and so is the HLC leading physical
    /// time (by up to the maximum offset from a remote timestamp, plus
    /// such a jump): a clock ahead only ends this node's leases earlier.
    /// A larger jump would make this node judge its leases and take its
    /// reads' timestamps on a clock further behind real time than the
    /// protocol allows, so it must not serve. Latched: a jump that
    /// happened is never forgotten.
    fn read_physical(&self) -> i64 {
        let physical = self.clock.now_nanos();
        let before = self.max_physical.fetch_max(physical, Ordering::Relaxed);
        let back = before.saturating_sub(physical);
        let max = i64::try_from(self.max_offset.as_nanos()).unwrap_or(i64::MAX);
        if max > 0 && back > max {
            self.jumped_back_nanos.fetch_max(back, Ordering::Relaxed);
        }
        physical
    }

    /// Reads the physical clock and reports whether it has ever been seen
    /// to jump back by more than the maximum offset, and by how much at
    /// most.
    pub fn backward_jump(&self) -> Option<Duration> {
        self.read_physical();
        let nanos = self.jumped_back_nanos.load(Ordering::Relaxed);
        (nanos > 0).then(|| Duration::from_nanos(nanos.unsigned_abs()))
    }

    /// The latest timestamp issued or observed, without advancing the clock.
    pub fn last(&self) -> Timestamp {
        *self.last.lock()
    }

    /// Folds in a timestamp received from another node, so that every later
    /// `now()` is above it. Refuses timestamps beyond the maximum offset.
    pub fn update(&self, remote: Timestamp) -> Result<(), ClockOffsetError> {
        let physical = self.read_physical();
        let max_offset = i64::try_from(self.max_offset.as_nanos()).unwrap_or(i64::MAX);
        let ahead = remote.wall.saturating_sub(physical);
        if max_offset > 0 && ahead > max_offset {
            return Err(ClockOffsetError {
                remote,
                ahead_ms: ahead / 1_000_000,
                max_offset_ms: max_offset / 1_000_000,
            });
        }
        self.last.lock().forward(remote);
        Ok(())
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hlc")
            .field("last", &self.last())
            .field("max_offset", &self.max_offset)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manual(start: i64) -> (Arc<ManualClock>, Hlc) {
        let clock = ManualClock::new(start);
        let hlc = Hlc::new(clock.clone(), DEFAULT_MAX_OFFSET);
        (clock, hlc)
    }

    #[test]
    fn now_is_strictly_monotonic_when_the_clock_stands_still() {
        let (_, hlc) = manual(1_000);
        let a = hlc.now();
        let b = hlc.now();
        assert_eq!(a, Timestamp::new(1_000, 0));
        assert_eq!(b, Timestamp::new(1_000, 1));
    }

    #[test]
    fn now_never_goes_backwards_when_the_clock_does() {
        let (clock, hlc) = manual(5_000);
        let a = hlc.now();
        clock.set(4_000);
        let b = hlc.now();
        assert!(b > a);
        clock.set(6_000);
        assert_eq!(hlc.now(), Timestamp::new(6_000, 0));
    }

    #[test]
    fn update_moves_past_remote_timestamps_within_offset() {
        let (_, hlc) = manual(1_000_000_000);
        let remote = Timestamp::new(1_200_000_000, 7);
        hlc.update(remote).expect("within offset");
        assert!(hlc.now() > remote);
    }

    #[test]
    fn a_backward_jump_beyond_the_maximum_offset_is_latched() {
        let manual = ManualClock::new(10_000_000_000);
        let hlc = Hlc::new(manual.clone(), Duration::from_millis(500));
        hlc.now();
        // Within the maximum offset: tolerated (reads' uncertainty covers it).
        manual.set(10_000_000_000 - 400_000_000);
        hlc.now();
        assert_eq!(hlc.backward_jump(), None);
        // A remote timestamp 500 ms ahead is fine too.
        manual.set(10_000_000_000);
        hlc.update(Timestamp::new(10_500_000_000, 0))
            .expect("within offset");
        assert_eq!(hlc.backward_jump(), None);
        // Then back by 176 ms: the HLC now leads physical time by 676 ms,
        // which is no danger (a clock ahead ends leases earlier); the jump
        // is within the offset. (The simulation found a node that stopped
        // serving for good after exactly this when the gap was latched.)
        manual.set(10_000_000_000 - 176_000_000);
        hlc.now();
        assert_eq!(hlc.backward_jump(), None);
        // Back by 600 ms from the latest reading: latched, and stays latched
        // once time catches up.
        manual.set(10_000_000_000);
        manual.set(9_400_000_000);
        assert_eq!(hlc.backward_jump(), Some(Duration::from_millis(600)));
        manual.set(20_000_000_000);
        hlc.now();
        assert_eq!(hlc.backward_jump(), Some(Duration::from_millis(600)));
    }

    #[test]
    fn update_rejects_remote_timestamps_beyond_max_offset() {
        let (_, hlc) = manual(1_000_000_000);
        let err = hlc
            .update(Timestamp::new(1_600_000_000, 0))
            .expect_err("600 ms ahead");
        assert_eq!(err.ahead_ms, 600);
        // The clock did not take the bad timestamp.
        assert!(hlc.now() < Timestamp::new(1_600_000_000, 0));
    }

    #[test]
    fn the_offset_file_clock_follows_the_file_and_keeps_its_offset_when_the_file_is_bad() {
        let dir = std::env::temp_dir().join(format!("hlc-offset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("offset");
        std::fs::write(&file, "-2000\n").expect("write offset");
        let clock = offset_file_clock(&file);
        let behind = SystemClock.now_nanos() - clock.now_nanos();
        assert!(
            (1_900_000_000..2_100_000_000).contains(&behind),
            "clock should be 2 s behind, is {behind} ns"
        );
        std::fs::write(&file, "3000").expect("write offset");
        std::thread::sleep(OFFSET_FILE_POLL * 5);
        let ahead = clock.now_nanos() - SystemClock.now_nanos();
        assert!(
            (2_900_000_000..3_100_000_000).contains(&ahead),
            "clock should be 3 s ahead, is {ahead} ns"
        );
        std::fs::write(&file, "not a number").expect("write offset");
        std::thread::sleep(OFFSET_FILE_POLL * 3);
        let still_ahead = clock.now_nanos() - SystemClock.now_nanos();
        assert!(still_ahead > 2_900_000_000, "kept the last offset");
        assert!(parse_offset_millis(" 12 ").is_ok());
        assert!(parse_offset_millis("1.5").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn next_and_prev_are_inverse() {
        let t = Timestamp::new(10, i32::MAX);
        assert_eq!(t.next(), Timestamp::new(11, 0));
        assert_eq!(t.next().prev(), t);
        assert_eq!(Timestamp::ZERO.prev(), Timestamp::ZERO);
    }

    #[test]
    fn display_is_seconds_nanos_logical() {
        assert_eq!(
            Timestamp::new(1_500_000_001, 3).to_string(),
            "1.500000001,3"
        );
    }
}
