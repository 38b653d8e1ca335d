//! Iteration over a span of user keys, merging the lock table with the versions.
//!
//! [`MergedCursor`] walks the user keys of `[start, end)` in order (or in
//! reverse) that have an intent, committed versions, or both. For each user
//! key it exposes the raw intent record, then yields the key's versions one by
//! one, newest first when going forward and oldest first in reverse. Version
//! keys are decoded into one reused buffer, so a scan allocates nothing per
//! version; versions the caller does not ask for are stepped over, and after a
//! few steps the cursor re-seeks past the key instead.

use tardigrade_hlc::Timestamp;

use super::Result;
use super::key::{decode_mvcc_key_into, mvcc_key_lower_bound, mvcc_key_upper_bound};
use crate::engine::{Reader, Slice, Space};

type RawIter<'r> = Box<dyn Iterator<Item = crate::engine::Result<(Slice, Slice)>> + 'r>;

/// `r.scan`, but empty for an empty or inverted span (which not every
/// [`Reader`] guards against).
pub(crate) fn scan_span<'r>(
    r: &'r dyn Reader,
    space: Space,
    lower: &[u8],
    upper: &[u8],
    reverse: bool,
) -> RawIter<'r> {
    if lower >= upper {
        return Box::new(std::iter::empty());
    }
    r.scan(space, lower, upper, reverse)
}

/// How many versions of one key are stepped over before re-seeking past it.
const STEPS_BEFORE_SEEK: usize = 8;

struct VersionCursor<'r> {
    r: &'r dyn Reader,
    lower: Vec<u8>,
    upper: Vec<u8>,
    reverse: bool,
    it: RawIter<'r>,
    valid: bool,
    /// Decoded user key of the current entry.
    key: Vec<u8>,
    ts: Timestamp,
    value: Option<Slice>,
}

impl<'r> VersionCursor<'r> {
    fn new(r: &'r dyn Reader, lower: Vec<u8>, upper: Vec<u8>, reverse: bool) -> Result<Self> {
        let it = scan_span(r, Space::Mvcc, &lower, &upper, reverse);
        let mut c = VersionCursor {
            r,
            lower,
            upper,
            reverse,
            it,
            valid: false,
            key: Vec::new(),
            ts: Timestamp::ZERO,
            value: None,
        };
        c.advance()?;
        Ok(c)
    }

    fn advance(&mut self) -> Result<()> {
        match self.it.next() {
            None => {
                self.valid = false;
                self.value = None;
            }
            Some(entry) => {
                let (k, v) = entry?;
                self.ts = decode_mvcc_key_into(&k, &mut self.key)?;
                self.value = Some(v);
                self.valid = true;
            }
        }
        Ok(())
    }

    /// Positions on the first entry past every version of `user_key`.
    fn seek_past(&mut self, user_key: &[u8]) -> Result<()> {
        if self.reverse {
            let bound = mvcc_key_lower_bound(user_key);
            if bound < self.upper {
                self.upper = bound;
            }
        } else {
            let bound = mvcc_key_upper_bound(user_key);
            if bound > self.lower {
                self.lower = bound;
            }
        }
        self.it = scan_span(self.r, Space::Mvcc, &self.lower, &self.upper, self.reverse);
        self.advance()
    }
}

/// Merged iteration over the lock table and the versions of a span.
pub(crate) struct MergedCursor<'r> {
    versions: VersionCursor<'r>,
    locks: RawIter<'r>,
    /// The next lock table entry (not yet visited).
    next_lock: Option<(Slice, Slice)>,
    reverse: bool,
    /// The user key the cursor is on, if any.
    cur_key: Vec<u8>,
    on_key: bool,
    /// The intent record at `cur_key`, if there is one.
    cur_lock: Option<Slice>,
}

impl<'r> MergedCursor<'r> {
    pub(crate) fn new(r: &'r dyn Reader, start: &[u8], end: &[u8], reverse: bool) -> Result<Self> {
        let versions = VersionCursor::new(
            r,
            mvcc_key_lower_bound(start),
            mvcc_key_lower_bound(end),
            reverse,
        )?;
        let mut locks = scan_span(r, Space::Lock, start, end, reverse);
        let next_lock = locks.next().transpose()?;
        Ok(MergedCursor {
            versions,
            locks,
            next_lock,
            reverse,
            cur_key: Vec::new(),
            on_key: false,
            cur_lock: None,
        })
    }

    /// The raw intent record at the current key, if any.
    pub(crate) fn lock_value(&self) -> Option<&[u8]> {
        self.cur_lock.as_deref()
    }

    /// Steps over the current key's remaining versions.
    fn finish_key(&mut self) -> Result<()> {
        if !self.on_key {
            return Ok(());
        }
        let mut steps = 0;
        while self.versions.valid && self.versions.key == self.cur_key {
            if steps == STEPS_BEFORE_SEEK {
                self.versions.seek_past(&self.cur_key)?;
                break;
            }
            self.versions.advance()?;
            steps += 1;
        }
        self.on_key = false;
        Ok(())
    }

    /// The user key the next call to [`Self::next_user_key`] will move to.
    fn upcoming(&self) -> Option<&[u8]> {
        let v = self.versions.valid.then_some(self.versions.key.as_slice());
        let l = self.next_lock.as_ref().map(|(k, _)| k.as_ref());
        match (v, l) {
            (None, None) => None,
            (Some(k), None) | (None, Some(k)) => Some(k),
            (Some(a), Some(b)) => Some(if (a < b) != self.reverse { a } else { b }),
        }
    }

    /// Whether any user key remains after the current one.
    pub(crate) fn peek_next_key(&mut self) -> Result<Option<Vec<u8>>> {
        self.finish_key()?;
        Ok(self.upcoming().map(<[u8]>::to_vec))
    }

    /// Moves to the next user key (copied into `key` as well) and returns
    /// whether it has an intent, or `None` at the end of the span.
    pub(crate) fn next_user_key(&mut self, key: &mut Vec<u8>) -> Result<Option<bool>> {
        self.finish_key()?;
        let Some(next) = self.upcoming() else {
            self.cur_lock = None;
            return Ok(None);
        };
        key.clear();
        key.extend_from_slice(next);
        self.cur_key.clear();
        self.cur_key.extend_from_slice(key);
        self.on_key = true;
        self.cur_lock = None;
        if let Some((k, _)) = &self.next_lock
            && k.as_ref() == self.cur_key.as_slice()
        {
            let (_, v) = self.next_lock.take().expect("checked");
            self.cur_lock = Some(v);
            self.next_lock = self.locks.next().transpose()?;
        }
        Ok(Some(self.cur_lock.is_some()))
    }

    /// The next version of the current key: newest first going forward,
    /// oldest first in reverse.
    pub(crate) fn next_version(&mut self) -> Result<Option<(Timestamp, Slice)>> {
        if !self.on_key || !self.versions.valid || self.versions.key != self.cur_key {
            return Ok(None);
        }
        let out = (
            self.versions.ts,
            self.versions.value.clone().expect("valid"),
        );
        self.versions.advance()?;
        Ok(Some(out))
    }
}
