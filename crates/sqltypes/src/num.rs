//! Exact NUMERIC arithmetic with PostgreSQL's result scales.
//!
//! [`Decimal`] (from the encoding crate) stores values; this module computes with
//! them. Finite values are turned into [`Num`] — a sign, decimal digits and a
//! non-negative scale — and back. Addition, subtraction and multiplication are exact;
//! division rounds half away from zero to the scale PostgreSQL's `select_div_scale`
//! chooses (at least 16 significant digits, never fewer decimals than either input),
//! so `1::numeric / 3` is `0.33333333333333333333` and `avg` prints as PostgreSQL does.

use std::cmp::Ordering;

use tardigrade_encoding::decimal::Decimal;

use crate::{SqlError, SqlResult};

/// PostgreSQL's NUMERIC_MIN_SIG_DIGITS.
const MIN_SIG_DIGITS: i64 = 16;
/// PostgreSQL's NUMERIC_MAX_DISPLAY_SCALE.
pub const MAX_DISPLAY_SCALE: i64 = 1000;

/// A finite decimal: `(-1)^neg × mag × 10^-scale`, `mag` as digits 0..=9, most
/// significant first, without leading zeros (empty for zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Num {
    pub neg: bool,
    pub mag: Vec<u8>,
    pub scale: u32,
}

fn strip_leading(mut v: Vec<u8>) -> Vec<u8> {
    let lead = v.iter().take_while(|&&d| d == 0).count();
    v.drain(..lead);
    v
}

fn cmp_mag(a: &[u8], b: &[u8]) -> Ordering {
    let a = &a[a.iter().take_while(|&&d| d == 0).count()..];
    let b = &b[b.iter().take_while(|&&d| d == 0).count()..];
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn add_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n + 1);
    let mut carry = 0u8;
    for i in 0..n {
        let x = if i < a.len() { a[a.len() - 1 - i] } else { 0 };
        let y = if i < b.len() { b[b.len() - 1 - i] } else { 0 };
        let s = x + y + carry;
        out.push(s % 10);
        carry = s / 10;
    }
    if carry > 0 {
        out.push(carry);
    }
    out.reverse();
    strip_leading(out)
}

/// `a - b` for `a >= b`.
fn sub_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i8;
    for i in 0..a.len() {
        let x = a[a.len() - 1 - i] as i8;
        let y = if i < b.len() {
            b[b.len() - 1 - i] as i8
        } else {
            0
        };
        let mut d = x - y - borrow;
        if d < 0 {
            d += 10;
            borrow = 1;
        } else {
            borrow = 0;
        }
        out.push(d as u8);
    }
    out.reverse();
    strip_leading(out)
}

fn mul_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut acc = vec![0u64; a.len() + b.len()];
    for (i, &x) in a.iter().rev().enumerate() {
        if x == 0 {
            continue;
        }
        for (j, &y) in b.iter().rev().enumerate() {
            acc[i + j] += u64::from(x) * u64::from(y);
        }
    }
    let mut carry = 0u64;
    let mut out = Vec::with_capacity(acc.len());
    for v in acc {
        let s = v + carry;
        out.push((s % 10) as u8);
        carry = s / 10;
    }
    while carry > 0 {
        out.push((carry % 10) as u8);
        carry /= 10;
    }
    out.reverse();
    strip_leading(out)
}

/// `rem - q·b` into `out` (rem has one more digit than b, both aligned right);
/// false when the result would be negative.
fn sub_multiple(rem: &[u8], b: &[u8], q: u8, out: &mut [u8]) -> bool {
    let n = b.len();
    let mut borrow: i32 = 0;
    for i in (0..=n).rev() {
        let bd = if i >= 1 { i32::from(b[i - 1]) } else { 0 };
        let mut v = i32::from(rem[i]) - i32::from(q) * bd - borrow;
        borrow = 0;
        if v < 0 {
            borrow = (-v + 9) / 10;
            v += borrow * 10;
        }
        out[i] = v as u8;
    }
    borrow == 0
}

/// Integer division of magnitudes: `(a / b, a % b)`; `b` must be non-zero. Schoolbook
/// long division with a quotient-digit estimate from the leading digits, O(|a|·|b|).
fn divmod_mag(a: &[u8], b: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let b = &b[b.iter().take_while(|&&d| d == 0).count()..];
    let n = b.len();
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let k = n.min(3);
    let btop = b[..k].iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d));
    let mut rem = vec![0u8; n + 1];
    let mut scratch = vec![0u8; n + 1];
    let mut q = Vec::with_capacity(a.len());
    for &d in a {
        rem.rotate_left(1);
        rem[n] = d;
        let rtop = rem[..=k]
            .iter()
            .fold(0u64, |acc, &x| acc * 10 + u64::from(x));
        let mut qd = (rtop / btop).min(9) as u8;
        while qd > 0 && !sub_multiple(&rem, b, qd, &mut scratch) {
            qd -= 1;
        }
        if qd > 0 {
            std::mem::swap(&mut rem, &mut scratch);
        }
        // the estimate can fall short by one
        while qd < 9 && sub_multiple(&rem, b, 1, &mut scratch) {
            std::mem::swap(&mut rem, &mut scratch);
            qd += 1;
        }
        q.push(qd);
    }
    (strip_leading(q), strip_leading(rem))
}

fn pad_zeros(v: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() + n);
    out.extend_from_slice(v);
    if !v.is_empty() {
        out.resize(v.len() + n, 0);
    }
    out
}

impl Num {
    pub fn zero() -> Num {
        Num {
            neg: false,
            mag: Vec::new(),
            scale: 0,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.mag.is_empty()
    }

    /// The finite part of a decimal (`None` for NaN and infinities).
    pub fn from_decimal(d: &Decimal) -> Option<Num> {
        if d.is_nan() || d.is_infinite() {
            return None;
        }
        let e = d.exponent();
        let digits = d.coefficient_digits();
        Some(if e >= 0 {
            Num {
                neg: d.is_negative(),
                mag: pad_zeros(digits, e as usize),
                scale: 0,
            }
        } else {
            Num {
                neg: d.is_negative(),
                mag: digits.to_vec(),
                scale: e.unsigned_abs(),
            }
        })
    }

    pub fn from_i128(v: i128) -> Num {
        let mag = v
            .unsigned_abs()
            .to_string()
            .bytes()
            .map(|b| b - b'0')
            .collect();
        Num {
            neg: v < 0,
            mag: strip_leading(mag),
            scale: 0,
        }
    }

    pub fn to_decimal(&self) -> SqlResult<Decimal> {
        let exp = -(i64::from(self.scale));
        let e = i32::try_from(exp).map_err(|_| overflow())?;
        Decimal::from_parts(self.neg && !self.mag.is_empty(), self.mag.clone(), e)
            .ok_or_else(overflow)
    }

    fn with_scale(&self, scale: u32) -> Vec<u8> {
        debug_assert!(scale >= self.scale);
        pad_zeros(&self.mag, (scale - self.scale) as usize)
    }

    pub fn negate(mut self) -> Num {
        self.neg = !self.neg && !self.mag.is_empty();
        self
    }

    pub fn abs(mut self) -> Num {
        self.neg = false;
        self
    }

    pub fn cmp_num(&self, other: &Num) -> Ordering {
        match (self.neg && !self.is_zero(), other.neg && !other.is_zero()) {
            (false, true) => return Ordering::Greater,
            (true, false) => return Ordering::Less,
            _ => {}
        }
        let s = self.scale.max(other.scale);
        let ord = cmp_mag(&self.with_scale(s), &other.with_scale(s));
        if self.neg && !self.is_zero() {
            ord.reverse()
        } else {
            ord
        }
    }

    pub fn add(&self, other: &Num) -> Num {
        let s = self.scale.max(other.scale);
        let (a, b) = (self.with_scale(s), other.with_scale(s));
        if self.neg == other.neg {
            return Num {
                neg: self.neg,
                mag: add_mag(&a, &b),
                scale: s,
            }
            .normalize_sign();
        }
        match cmp_mag(&a, &b) {
            Ordering::Less => Num {
                neg: other.neg,
                mag: sub_mag(&b, &a),
                scale: s,
            },
            _ => Num {
                neg: self.neg,
                mag: sub_mag(&a, &b),
                scale: s,
            },
        }
        .normalize_sign()
    }

    pub fn sub(&self, other: &Num) -> Num {
        self.add(&other.clone().negate())
    }

    pub fn mul(&self, other: &Num) -> Num {
        Num {
            neg: self.neg != other.neg,
            mag: mul_mag(&self.mag, &other.mag),
            scale: self.scale + other.scale,
        }
        .normalize_sign()
    }

    fn normalize_sign(mut self) -> Num {
        if self.mag.is_empty() {
            self.neg = false;
        }
        self
    }

    /// Decimal exponent of the most significant digit (value in [10^e, 10^(e+1))).
    fn dweight(&self) -> i64 {
        self.mag.len() as i64 - 1 - i64::from(self.scale)
    }

    /// PostgreSQL's base-10000 `(weight, first digit)` of a non-zero value.
    fn base10000_lead(&self) -> (i64, u32) {
        let e = self.dweight();
        let w = e.div_euclid(4);
        let ndig = (e - 4 * w + 1) as usize; // 1..=4 digits form the first group
        let mut first = 0u32;
        for i in 0..ndig {
            first = first * 10 + u32::from(self.mag.get(i).copied().unwrap_or(0));
        }
        (w, first)
    }

    /// PostgreSQL's `select_div_scale`.
    pub fn div_scale(&self, other: &Num) -> u32 {
        let (w1, f1) = if self.is_zero() {
            (0, 0)
        } else {
            self.base10000_lead()
        };
        let (w2, f2) = if other.is_zero() {
            (0, 0)
        } else {
            other.base10000_lead()
        };
        let mut qweight = w1 - w2;
        if f1 <= f2 {
            qweight -= 1;
        }
        let rscale = (MIN_SIG_DIGITS - qweight * 4)
            .max(i64::from(self.scale))
            .max(i64::from(other.scale))
            .clamp(0, MAX_DISPLAY_SCALE);
        rscale as u32
    }

    /// `self / other` rounded half away from zero to `scale` decimals.
    pub fn div_to_scale(&self, other: &Num, scale: u32) -> SqlResult<Num> {
        if other.is_zero() {
            return Err(SqlError::division_by_zero());
        }
        // q = self.mag * 10^(scale + 1 + other.scale - self.scale) / other.mag
        let shift = i64::from(scale) + 1 + i64::from(other.scale) - i64::from(self.scale);
        let (num, den) = if shift >= 0 {
            (pad_zeros(&self.mag, shift as usize), other.mag.clone())
        } else {
            (self.mag.clone(), pad_zeros(&other.mag, (-shift) as usize))
        };
        let (q, _) = divmod_mag(&num, &den);
        let t = Num {
            neg: self.neg != other.neg,
            mag: q,
            scale: scale + 1,
        };
        Ok(t.round(scale as i64))
    }

    /// PostgreSQL's numeric division (`/`).
    pub fn div(&self, other: &Num) -> SqlResult<Num> {
        let s = self.div_scale(other);
        self.div_to_scale(other, s)
    }

    /// Truncating integer division (`div()`), scale 0.
    pub fn div_trunc(&self, other: &Num) -> SqlResult<Num> {
        if other.is_zero() {
            return Err(SqlError::division_by_zero());
        }
        let s = self.scale.max(other.scale);
        let (q, _) = divmod_mag(&self.with_scale(s), &other.with_scale(s));
        Ok(Num {
            neg: self.neg != other.neg,
            mag: q,
            scale: 0,
        }
        .normalize_sign())
    }

    /// `self % other`: the sign of the dividend, scale of the wider input.
    pub fn rem(&self, other: &Num) -> SqlResult<Num> {
        if other.is_zero() {
            return Err(SqlError::division_by_zero());
        }
        let s = self.scale.max(other.scale);
        let (_, r) = divmod_mag(&self.with_scale(s), &other.with_scale(s));
        Ok(Num {
            neg: self.neg,
            mag: strip_leading(r),
            scale: s,
        }
        .normalize_sign())
    }

    /// Rounds half away from zero to `scale` decimals (negative: to tens, hundreds…).
    /// The result's scale is `max(scale, 0)`.
    pub fn round(&self, scale: i64) -> Num {
        self.round_mode(scale, true)
    }

    /// Truncates toward zero to `scale` decimals.
    pub fn trunc(&self, scale: i64) -> Num {
        self.round_mode(scale, false)
    }

    fn round_mode(&self, scale: i64, round: bool) -> Num {
        let cur = i64::from(self.scale);
        let target = scale.max(0) as u32;
        if scale >= cur {
            return Num {
                neg: self.neg,
                mag: self.with_scale(target),
                scale: target,
            };
        }
        let drop = (cur - scale) as usize;
        let keep = self.mag.len().saturating_sub(drop);
        let mut kept = self.mag[..keep].to_vec();
        let first_dropped = if self.mag.len() >= drop {
            self.mag[keep]
        } else {
            0
        };
        if round && first_dropped >= 5 {
            kept = add_mag(&kept, &[1]);
        }
        // Digits below 10^-scale are zero: for negative scales append zeros.
        let mag = if scale < 0 {
            pad_zeros(&kept, (-scale) as usize)
        } else {
            kept
        };
        Num {
            neg: self.neg,
            mag: strip_leading(mag),
            scale: target,
        }
        .normalize_sign()
    }

    pub fn is_integral(&self) -> bool {
        let s = self.scale as usize;
        self.mag.len() <= s && self.mag.is_empty()
            || self.mag[self.mag.len().saturating_sub(s)..]
                .iter()
                .all(|&d| d == 0)
    }

    /// Rounds (half away from zero) to an integer that fits i128.
    pub fn to_i128_round(&self) -> Option<i128> {
        let r = self.round(0);
        if r.mag.len() > 38 {
            return None;
        }
        let mut v: i128 = 0;
        for &d in &r.mag {
            v = v * 10 + i128::from(d);
        }
        Some(if r.neg { -v } else { v })
    }

    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// Number of digits before the decimal point (0 for |x| < 1).
    pub fn int_digits(&self) -> usize {
        self.mag.len().saturating_sub(self.scale as usize)
    }

    /// Removes trailing fractional zeros (scale shrinks, never below 0).
    pub fn trim_scale(&self) -> Num {
        let mut n = self.clone();
        while n.scale > 0 && n.mag.last() == Some(&0) {
            n.mag.pop();
            n.scale -= 1;
        }
        if n.mag.is_empty() {
            n.scale = 0;
        }
        n
    }

    /// The smallest integer >= self (scale 0).
    pub fn ceil(&self) -> Num {
        let t = self.trunc(0);
        if !self.neg && !self.is_integral() {
            t.add(&Num::from_i128(1))
        } else {
            t
        }
    }

    /// The largest integer <= self (scale 0).
    pub fn floor(&self) -> Num {
        let t = self.trunc(0);
        if self.neg && !self.is_integral() {
            t.sub(&Num::from_i128(1))
        } else {
            t
        }
    }

    /// Exact integer power with PostgreSQL 15's result scale for integral exponents
    /// (`max(16, scale of the base)`).
    pub fn pow_int(&self, exp: i64) -> SqlResult<Num> {
        let base_f = self.to_f64().abs();
        if base_f != 0.0 && (exp as f64 * base_f.log10()).abs() > 131_072.0 {
            return Err(overflow());
        }
        let rscale = MIN_SIG_DIGITS
            .max(i64::from(self.scale))
            .clamp(0, MAX_DISPLAY_SCALE);
        if exp < 0 {
            if self.is_zero() {
                return Err(SqlError::new(
                    "2201F",
                    "zero raised to a negative power is undefined",
                ));
            }
            let pos = self.pow_int_raw(exp.unsigned_abs(), rscale)?;
            return Num::from_i128(1).div_to_scale(&pos, rscale as u32);
        }
        Ok(self.pow_int_raw(exp.unsigned_abs(), rscale)?.round(rscale))
    }

    fn pow_int_raw(&self, mut e: u64, rscale: i64) -> SqlResult<Num> {
        let keep = rscale * 2 + 20;
        let mut result = Num::from_i128(1);
        let mut base = self.clone();
        while e > 0 {
            if e & 1 == 1 {
                result = result.mul(&base);
                if i64::from(result.scale) > keep {
                    result = result.round(keep);
                }
                if result.int_digits() > 131_072 {
                    return Err(overflow());
                }
            }
            e >>= 1;
            if e > 0 {
                base = base.mul(&base);
                if i64::from(base.scale) > keep {
                    base = base.round(keep);
                }
                if base.int_digits() > 131_072 {
                    return Err(overflow());
                }
            }
        }
        Ok(result)
    }

    /// Result scale PostgreSQL uses for a non-integral power, given the approximate
    /// result.
    pub fn pow_scale(&self, exp: &Num, approx: f64) -> u32 {
        let w = if approx == 0.0 || !approx.is_finite() {
            0
        } else {
            approx.abs().log10() as i64
        };
        (MIN_SIG_DIGITS - w)
            .max(i64::from(self.scale))
            .max(i64::from(exp.scale))
            .clamp(0, MAX_DISPLAY_SCALE) as u32
    }

    /// Result scale for sqrt (PostgreSQL's `numeric_sqrt`).
    pub fn sqrt_scale(&self) -> u32 {
        let (w, _) = if self.is_zero() {
            (0, 0)
        } else {
            self.base10000_lead()
        };
        let sweight = (w + 1) * 4 / 2 - 1;
        (MIN_SIG_DIGITS - sweight)
            .max(i64::from(self.scale))
            .clamp(0, MAX_DISPLAY_SCALE) as u32
    }

    /// Square root rounded to `scale` decimals (exact digit-by-digit).
    pub fn sqrt(&self, scale: u32) -> Num {
        // isqrt(mag * 10^(2*(scale+1) - self.scale)) then round the extra digit
        let target = 2 * (i64::from(scale) + 1);
        let shift = target - i64::from(self.scale);
        let v = if shift >= 0 {
            pad_zeros(&self.mag, shift as usize)
        } else {
            let keep = self.mag.len().saturating_sub((-shift) as usize);
            self.mag[..keep].to_vec()
        };
        let root = isqrt(&v);
        Num {
            neg: false,
            mag: root,
            scale: scale + 1,
        }
        .round(i64::from(scale))
    }
}

impl Num {
    /// Approximate natural logarithm (f64), valid even beyond f64's range.
    fn approx_ln(&self) -> f64 {
        let lead: f64 = self
            .mag
            .iter()
            .take(17)
            .fold(0.0, |a, &d| a * 10.0 + f64::from(d));
        let lead_digits = self.mag.len().min(17) as f64;
        (lead.log10() - (lead_digits - 1.0) + self.dweight() as f64) * std::f64::consts::LN_10
    }

    /// PostgreSQL's `estimate_ln_dweight`: the decimal weight of `ln(self)`.
    pub fn ln_dweight(&self) -> i64 {
        if self.neg || self.is_zero() {
            return 0;
        }
        let lo = Num::from_i128(9).with_scale_value(1);
        let hi = Num::from_i128(11).with_scale_value(1);
        if self.cmp_num(&lo) != Ordering::Less && self.cmp_num(&hi) != Ordering::Greater {
            let x = self.sub(&Num::from_i128(1));
            return if x.is_zero() { 0 } else { x.dweight() };
        }
        self.approx_ln().abs().log10() as i64
    }

    /// `mag × 10^-scale` with the given scale (a constructor helper).
    fn with_scale_value(mut self, scale: u32) -> Num {
        self.scale = scale;
        self
    }

    /// ln(x) for x in [1, 10] at working scale `ws` (sqrt reduction + atanh series).
    fn ln_small(&self, ws: i64) -> SqlResult<Num> {
        let one = Num::from_i128(1);
        let mut x = self.clone();
        let mut k = 0;
        while x.cmp_num(&Num::from_i128(102).with_scale_value(2)) == Ordering::Greater {
            x = x.sqrt(ws as u32);
            k += 1;
        }
        let z = x.sub(&one).div_to_scale(&x.add(&one), ws as u32)?;
        let z2 = z.mul(&z).round(ws);
        let mut term = z.clone();
        let mut sum = z;
        let mut d = 1i128;
        loop {
            term = term.mul(&z2).round(ws);
            d += 2;
            if term.is_zero() {
                break;
            }
            sum = sum.add(&term.div_to_scale(&Num::from_i128(d), ws as u32)?);
        }
        Ok(sum.mul(&Num::from_i128(2i128 << k)).round(ws))
    }

    /// Natural logarithm rounded to `rscale` decimals (self must be positive).
    pub fn ln(&self, rscale: u32) -> SqlResult<Num> {
        if self.is_zero() {
            return Err(SqlError::new("2201E", "cannot take logarithm of zero"));
        }
        if self.neg {
            return Err(SqlError::new(
                "2201E",
                "cannot take logarithm of a negative number",
            ));
        }
        let e = self.dweight();
        let m = Num {
            neg: false,
            mag: self.mag.clone(),
            scale: (i64::from(self.scale) + e) as u32,
        };
        let ws = i64::from(rscale) + 12 + (e.unsigned_abs() as f64).log10().ceil().max(0.0) as i64;
        let mut r = m.ln_small(ws)?;
        if e != 0 {
            let ln10 = Num::from_i128(10).ln_small(ws)?;
            r = r.add(&ln10.mul(&Num::from_i128(i128::from(e))));
        }
        Ok(r.round(i64::from(rscale)))
    }

    /// e^self rounded to `rscale` decimals.
    pub fn exp(&self, rscale: u32) -> SqlResult<Num> {
        let approx = self.to_f64();
        if approx > 301_000.0 || approx.is_nan() {
            return Err(overflow());
        }
        if approx < -301_000.0 {
            return Ok(Num::zero().round(i64::from(rscale)));
        }
        let result_dweight = (approx * std::f64::consts::LOG10_E).floor().max(0.0) as i64;
        let mut n = 0u32;
        while approx.abs() / f64::from(1u32 << n.min(30)) > 0.01 && n < 30 {
            n += 1;
        }
        let ws = i64::from(rscale) + result_dweight + 12 + i64::from(n) / 3 + 1;
        let y = self.div_to_scale(&Num::from_i128(1i128 << n), ws as u32)?;
        let mut sum = Num::from_i128(1);
        let mut term = Num::from_i128(1);
        let mut k = 1i128;
        loop {
            term = term.mul(&y).div_to_scale(&Num::from_i128(k), ws as u32)?;
            if term.is_zero() {
                break;
            }
            sum = sum.add(&term);
            k += 1;
        }
        for _ in 0..n {
            sum = sum.mul(&sum).round(ws);
        }
        Ok(sum.round(i64::from(rscale)))
    }

    /// self^y for a non-integral y (self > 0), rounded to `rscale` decimals.
    pub fn pow_frac(&self, y: &Num, rscale: u32) -> SqlResult<Num> {
        if self.is_zero() {
            return Ok(Num::zero().round(i64::from(rscale)));
        }
        let approx = self.approx_ln() * y.to_f64();
        if approx * std::f64::consts::LOG10_E > 131_072.0 || approx.is_nan() {
            return Err(overflow());
        }
        if approx * std::f64::consts::LOG10_E < -(f64::from(rscale) + 2.0) {
            return Ok(Num::zero().round(i64::from(rscale)));
        }
        let result_dweight = (approx * std::f64::consts::LOG10_E).floor().max(0.0) as i64;
        let ydigits = y.int_digits() as i64;
        let ws = i64::from(rscale) + result_dweight + ydigits + 12;
        let l = self.ln(ws as u32)?;
        l.mul(y).round(ws).exp(rscale)
    }
}

/// Integer square root of a digit magnitude (Newton's method).
fn isqrt(v: &[u8]) -> Vec<u8> {
    let v = strip_leading(v.to_vec());
    if v.is_empty() {
        return v;
    }
    // Initial guess from the leading digits, rounded up so Newton's iteration
    // descends monotonically onto floor(sqrt(v)).
    let mut x = {
        let len = v.len();
        let lead_len = if len <= 16 {
            len
        } else if (len - 16).is_multiple_of(2) {
            16
        } else {
            15
        };
        let lead = v[..lead_len]
            .iter()
            .fold(0u64, |a, &d| a * 10 + u64::from(d));
        let root = ((lead + 1) as f64).sqrt().ceil() as u64 + 1;
        let digits: Vec<u8> = root.to_string().bytes().map(|b| b - b'0').collect();
        pad_zeros(&digits, (len - lead_len) / 2)
    };
    loop {
        let (q, _) = divmod_mag(&v, &x);
        let sum = add_mag(&x, &q);
        let (y, _) = divmod_mag(&sum, &[2]);
        if cmp_mag(&y, &x) != Ordering::Less {
            return x;
        }
        x = y;
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_decimal() {
            Ok(d) => write!(f, "{d}"),
            Err(_) => f.write_str("NaN"),
        }
    }
}

/// 22003 "value overflows numeric format".
pub fn overflow() -> SqlError {
    SqlError::out_of_range("value overflows numeric format")
}

/// Rounds `d` to the column's `(precision, scale)`; 22003 "numeric field overflow" when
/// the integer part does not fit.
pub fn apply_typmod(d: &Decimal, precision: u16, scale: u16) -> SqlResult<Decimal> {
    if d.is_nan() {
        return Ok(d.clone());
    }
    let field_overflow = || {
        SqlError::out_of_range("numeric field overflow").with_detail(if d.is_infinite() {
            format!("A field with precision {precision}, scale {scale} cannot hold an infinite value.")
        } else {
            format!(
                "A field with precision {precision}, scale {scale} must round to an absolute value less than {}.",
                if precision > scale {
                    format!("10^{}", precision - scale)
                } else {
                    "1".to_owned()
                }
            )
        })
    };
    let Some(n) = Num::from_decimal(d) else {
        return Err(field_overflow());
    };
    let r = n.round(i64::from(scale));
    if r.int_digits() > usize::from(precision.saturating_sub(scale)) {
        return Err(field_overflow());
    }
    r.to_decimal()
}

/// Display scale of a decimal (digits after the point as it prints).
pub fn dscale(d: &Decimal) -> u32 {
    if d.exponent() < 0 {
        d.exponent().unsigned_abs()
    } else {
        0
    }
}

/// Decimal from an i64.
pub fn dec_from_i64(v: i64) -> Decimal {
    Decimal::from(v)
}

/// Decimal from an f64 as PostgreSQL's `float8::numeric` does (15 significant
/// digits); NaN and infinities map to the numeric specials.
pub fn dec_from_f64(v: f64, sig_digits: usize) -> SqlResult<Decimal> {
    if v.is_nan() {
        return Ok(Decimal::nan());
    }
    if v.is_infinite() {
        return Ok(Decimal::infinity(v < 0.0));
    }
    let s = format!("{:.*e}", sig_digits.saturating_sub(1), v);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mant = if mant.contains('.') {
        mant.trim_end_matches('0').trim_end_matches('.')
    } else {
        mant
    };
    format!("{mant}e{exp}").parse().map_err(|_| overflow())
}

/// Decimal to f64 (correctly rounded), with NaN and infinities.
pub fn dec_to_f64(d: &Decimal) -> f64 {
    if d.is_nan() {
        return f64::NAN;
    }
    if d.is_infinite() {
        return if d.is_negative() {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    d.to_string().parse().unwrap_or(f64::NAN)
}

/// A finite decimal whose coefficient fits in an `i128` (at most
/// [`FIXED_DIGITS`] digits): `coef × 10^-scale`. The allocation-free fast
/// path of `+`, `-`, `*` and of sums; anything that does not fit (or
/// overflows) takes the digit-string arithmetic of [`Num`], which gives the
/// same results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed {
    coef: i128,
    scale: u32,
}

/// Most coefficient digits a [`Fixed`] takes (i128 holds 38).
pub const FIXED_DIGITS: usize = 36;

fn pow10(k: u32) -> Option<i128> {
    10i128.checked_pow(k)
}

impl Fixed {
    /// `d` as a fixed-point value, when it is finite and small enough.
    pub fn from_decimal(d: &Decimal) -> Option<Fixed> {
        if d.is_nan() || d.is_infinite() {
            return None;
        }
        let digits = d.coefficient_digits();
        let e = d.exponent();
        let shift = e.max(0) as usize;
        if digits.len() + shift > FIXED_DIGITS || e < -(FIXED_DIGITS as i32) {
            return None;
        }
        let mut coef: i128 = 0;
        for &dg in digits {
            coef = coef * 10 + i128::from(dg);
        }
        coef *= pow10(shift as u32)?;
        if d.is_negative() {
            coef = -coef;
        }
        Some(Fixed {
            coef,
            scale: (-e).max(0) as u32,
        })
    }

    /// As [`Num::to_decimal`] would give the same value.
    pub fn to_decimal(self) -> SqlResult<Decimal> {
        let mut mag = self.coef.unsigned_abs();
        let mut digits = Vec::with_capacity(FIXED_DIGITS);
        while mag > 0 {
            digits.push((mag % 10) as u8);
            mag /= 10;
        }
        digits.reverse();
        let neg = self.coef < 0;
        let e = -i32::try_from(self.scale).map_err(|_| overflow())?;
        Decimal::from_parts(neg, digits, e).ok_or_else(overflow)
    }

    fn at_scale(self, scale: u32) -> Option<i128> {
        self.coef.checked_mul(pow10(scale - self.scale)?)
    }

    fn aligned(self, o: Fixed) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(o.scale);
        Some((self.at_scale(scale)?, o.at_scale(scale)?, scale))
    }

    /// `self + o` at the larger scale (PostgreSQL's), `None` on overflow.
    pub fn checked_add(self, o: Fixed) -> Option<Fixed> {
        let (a, b, scale) = self.aligned(o)?;
        Some(Fixed {
            coef: a.checked_add(b)?,
            scale,
        })
    }

    pub fn checked_sub(self, o: Fixed) -> Option<Fixed> {
        let (a, b, scale) = self.aligned(o)?;
        Some(Fixed {
            coef: a.checked_sub(b)?,
            scale,
        })
    }

    /// `self * o` at the sum of the scales (PostgreSQL's).
    pub fn checked_mul(self, o: Fixed) -> Option<Fixed> {
        let scale = self.scale.checked_add(o.scale)?;
        if scale as usize > FIXED_DIGITS {
            return None;
        }
        Some(Fixed {
            coef: self.coef.checked_mul(o.coef)?,
            scale,
        })
    }

    /// The value as a [`Num`] (when a sum leaves the fast path).
    pub fn to_num(self) -> Num {
        let mut n = Num::from_i128(self.coef);
        n.scale = self.scale;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_arithmetic_gives_what_the_digit_arithmetic_gives() {
        let samples = [
            "0",
            "0.00",
            "1",
            "-1",
            "12.3400",
            "-0.005",
            "99999999999999999",
            "1E2",
            "123456789012345678.901234",
            "-3.14159",
            "0.1",
            "1000000",
            "-250.75",
            "7",
            "0.000000000000000001",
            "123456789012345678901234567890.123456",
        ];
        let parse = |t: &str| t.parse::<Decimal>().expect("sample");
        for a in samples {
            for b in samples {
                let (da, db) = (parse(a), parse(b));
                let (Some(fa), Some(fb)) = (Fixed::from_decimal(&da), Fixed::from_decimal(&db))
                else {
                    continue;
                };
                let (na, nb) = (
                    Num::from_decimal(&da).expect("finite"),
                    Num::from_decimal(&db).expect("finite"),
                );
                for (op, fast, slow) in [
                    ("+", fa.checked_add(fb), na.add(&nb)),
                    ("-", fa.checked_sub(fb), na.sub(&nb)),
                    ("*", fa.checked_mul(fb), na.mul(&nb)),
                ] {
                    let Some(fast) = fast else { continue };
                    let (x, y) = (
                        fast.to_decimal().expect("fast"),
                        slow.to_decimal().expect("slow"),
                    );
                    assert_eq!(x.to_string(), y.to_string(), "{a} {op} {b}");
                }
                let back = fa.to_num().to_decimal().expect("back");
                assert_eq!(back.to_string(), da.to_string(), "{a} through to_num");
            }
        }
    }

    fn n(s: &str) -> Num {
        Num::from_decimal(&s.parse::<Decimal>().expect("literal")).expect("finite")
    }

    #[test]
    fn addition_subtraction_and_multiplication_are_exact_with_pg_scales() {
        let cases = [
            ("1.5", "+", "2.25", "3.75"),
            ("1.50", "+", "-1.5", "0.00"),
            ("-3", "-", "4.1", "-7.1"),
            ("99999999999999999999", "+", "1", "100000000000000000000"),
            ("1.5", "*", "2.25", "3.375"),
            ("-0.1", "*", "0.1", "-0.01"),
            ("123456789", "*", "987654321", "121932631112635269"),
        ];
        for (a, op, b, want) in cases {
            let got = match op {
                "+" => n(a).add(&n(b)),
                "-" => n(a).sub(&n(b)),
                _ => n(a).mul(&n(b)),
            };
            assert_eq!(got.to_string(), want, "{a} {op} {b}");
        }
    }

    #[test]
    fn division_uses_postgres_select_div_scale() {
        let cases = [
            ("1", "3", "0.33333333333333333333"),
            ("3", "2", "1.5000000000000000"),
            ("5", "3", "1.6666666666666667"),
            ("30", "2", "15.0000000000000000"),
            ("10", "4", "2.5000000000000000"),
            ("2", "3", "0.66666666666666666667"),
            ("-2", "3", "-0.66666666666666666667"),
            ("1.000000000000000000001", "1", "1.000000000000000000001"),
            ("100000", "3", "33333.333333333333"),
        ];
        for (a, b, want) in cases {
            assert_eq!(n(a).div(&n(b)).expect("div").to_string(), want, "{a}/{b}");
        }
        assert_eq!(n("1").div(&n("0")).expect_err("div0").code, "22012");
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(n("2.5").round(0).to_string(), "3");
        assert_eq!(n("-2.5").round(0).to_string(), "-3");
        assert_eq!(n("1.245").round(2).to_string(), "1.25");
        assert_eq!(n("1.5").round(3).to_string(), "1.500");
        assert_eq!(n("1234.5").round(-2).to_string(), "1200");
        assert_eq!(n("0.4").round(0).to_string(), "0");
        assert_eq!(n("9.99").round(1).to_string(), "10.0");
        assert_eq!(n("1.99").trunc(1).to_string(), "1.9");
    }

    #[test]
    fn remainder_takes_the_sign_of_the_dividend() {
        assert_eq!(n("7").rem(&n("3.5")).expect("rem").to_string(), "0.0");
        assert_eq!(n("-7").rem(&n("3")).expect("rem").to_string(), "-1");
        assert_eq!(n("7.5").rem(&n("2")).expect("rem").to_string(), "1.5");
    }

    #[test]
    fn typmod_rounds_and_checks_overflow() {
        let d = |s: &str| s.parse::<Decimal>().expect("literal");
        assert_eq!(
            apply_typmod(&d("1.5"), 10, 2).expect("fits").to_string(),
            "1.50"
        );
        assert_eq!(
            apply_typmod(&d("1.005"), 10, 2).expect("fits").to_string(),
            "1.01"
        );
        let e = apply_typmod(&d("1000"), 5, 2).expect_err("overflow");
        assert_eq!(e.code, "22003");
        assert_eq!(e.message, "numeric field overflow");
    }

    #[test]
    fn float_to_numeric_keeps_fifteen_digits() {
        assert_eq!(dec_from_f64(0.1, 15).expect("f").to_string(), "0.1");
        assert_eq!(
            dec_from_f64(1.0 / 3.0, 15).expect("f").to_string(),
            "0.333333333333333"
        );
        assert_eq!(dec_from_f64(100.0, 15).expect("f").to_string(), "100");
        assert_eq!(
            dec_from_f64(1e20, 15).expect("f").to_string(),
            "100000000000000000000"
        );
    }

    #[test]
    fn integer_powers_are_exact() {
        assert_eq!(
            n("2").pow_int(2).expect("pow").to_string(),
            "4.0000000000000000"
        );
        assert_eq!(
            n("2").pow_int(3).expect("pow").to_string(),
            "8.0000000000000000"
        );
    }

    #[test]
    fn integer_powers_use_scale_sixteen() {
        assert_eq!(
            n("10").pow_int(-2).expect("pow").to_string(),
            "0.0100000000000000"
        );
        assert_eq!(
            n("3").pow_int(40).expect("pow").to_string(),
            "12157665459056928801.0000000000000000"
        );
    }

    #[test]
    fn square_roots_use_postgres_scale() {
        for (x, want) in [
            ("2", "1.414213562373095"),
            ("1000000", "1000.0000000000000"),
            ("0.0001", "0.01000000000000000"),
            ("123.456", "11.111075555498666"),
        ] {
            let v = n(x);
            assert_eq!(v.sqrt(v.sqrt_scale()).to_string(), want, "sqrt({x})");
        }
    }
}
