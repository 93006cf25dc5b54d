//! The date functions of the expression language, as pure functions over UTC instants: DateAdd and
//! DateDiff with `Microsoft.VisualBasic.DateAndTime` semantics (A16), CDate's string parsing (A17),
//! FormatDateTime's .NET formats (A18, see `dotnet_format`), the default rendering
//! `M/d/yyyy h:mm:ss tt`, and AD FILETIME for NumFromDate/DateFromNum.
//!
//! Like .NET's `DateTime`, results are limited to the years 1–9999; anything outside is an error
//! (DateAdd) or no value (CDate, parsing, DateFromNum). Nothing here panics.

use chrono::{DateTime, Datelike, Months, TimeDelta, Utc};

use crate::dotnet_format::{
    self, apply_am_pm, build_utc, four_digit_year, Cursor, MinutesPart, DAYS, DAYS_ABBR, MONTHS, MONTHS_ABBR,
};

const TICKS_PER_SECOND: i64 = 10_000_000;
const TICKS_PER_MINUTE: i64 = 60 * TICKS_PER_SECOND;
const TICKS_PER_HOUR: i64 = 60 * TICKS_PER_MINUTE;
const TICKS_PER_DAY: i64 = 24 * TICKS_PER_HOUR;
/// Seconds from 1601-01-01 (the FILETIME epoch) to 1970-01-01.
const FILETIME_EPOCH_OFFSET_SECS: i64 = 11_644_473_600;
/// FILETIME of .NET's `DateTime.MaxValue` (9999-12-31T23:59:59.9999999Z), the largest value
/// `DateTime.FromFileTimeUtc` accepts.
const MAX_FILETIME: i64 = 2_650_467_743_999_999_999;
/// `Calendar.AddMonths` accepts at most ±120,000 months.
const MAX_MONTHS: i64 = 120_000;

const VALID_INTERVALS: &str = "yyyy (year), q (quarter), m (month), y (day of year), d (day), \
                               w (weekday), ww (week), h (hour), n (minute), s (second)";

/// The VB `DateInterval` names, case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interval {
    Year,
    Quarter,
    Month,
    DayOfYear,
    Day,
    Weekday,
    WeekOfYear,
    Hour,
    Minute,
    Second,
}

fn interval(name: &str) -> Result<Interval, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "yyyy" => Interval::Year,
        "q" => Interval::Quarter,
        "m" => Interval::Month,
        "y" => Interval::DayOfYear,
        "d" => Interval::Day,
        "w" => Interval::Weekday,
        "ww" => Interval::WeekOfYear,
        "h" => Interval::Hour,
        "n" => Interval::Minute,
        "s" => Interval::Second,
        _ => return Err(format!("unknown interval \"{name}\"; expected one of {VALID_INTERVALS}")),
    })
}

fn out_of_range() -> String {
    "the result is outside the supported dates (years 1 to 9999)".to_owned()
}

fn in_range(date: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if (1..=9999).contains(&date.year()) {
        Ok(date)
    } else {
        Err(out_of_range())
    }
}

/// `Calendar.AddMonths`: moves the month, clamps the day to the target month's length, keeps the
/// time of day.
fn add_months(date: DateTime<Utc>, months: i64) -> Result<DateTime<Utc>, String> {
    if !(-MAX_MONTHS..=MAX_MONTHS).contains(&months) {
        return Err(format!("{months} months is more than the ±{MAX_MONTHS} months a date can move"));
    }
    let magnitude = Months::new(u32::try_from(months.unsigned_abs()).map_err(|_| out_of_range())?);
    let moved = if months >= 0 { date.checked_add_months(magnitude) } else { date.checked_sub_months(magnitude) };
    in_range(moved.ok_or_else(out_of_range)?)
}

fn add_delta(date: DateTime<Utc>, delta: Option<TimeDelta>) -> Result<DateTime<Utc>, String> {
    let delta = delta.ok_or_else(out_of_range)?;
    in_range(date.checked_add_signed(delta).ok_or_else(out_of_range)?)
}

/// VB `DateAdd(interval, number, date)`: the number is truncated towards zero (`Fix`) and must fit
/// a 32-bit integer (VB's `CInt`); `yyyy`, `q` and `m` go through `Calendar.AddMonths` (the day of
/// month is clamped: Jan 31 + 1 month = Feb 28/29); `y`, `d` and `w` add days; `ww` adds weeks;
/// `h`, `n`, `s` add hours, minutes, seconds. Errors: unknown interval (the message lists the valid
/// ones), a number that is not finite or too large, or a result outside the years 1–9999.
pub(crate) fn date_add(interval_name: &str, number: f64, date: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let interval = interval(interval_name)?;
    let fixed = number.trunc();
    if !fixed.is_finite() || fixed < f64::from(i32::MIN) || fixed > f64::from(i32::MAX) {
        return Err(format!("the number {number} is out of range"));
    }
    // In range and integral, so the conversion is exact.
    let n = fixed as i64;
    match interval {
        Interval::Year => add_months(date, n.checked_mul(12).ok_or_else(out_of_range)?),
        Interval::Quarter => add_months(date, n.checked_mul(3).ok_or_else(out_of_range)?),
        Interval::Month => add_months(date, n),
        Interval::Day | Interval::DayOfYear | Interval::Weekday => add_delta(date, TimeDelta::try_days(n)),
        Interval::WeekOfYear => add_delta(date, TimeDelta::try_weeks(n)),
        Interval::Hour => add_delta(date, TimeDelta::try_hours(n)),
        Interval::Minute => add_delta(date, TimeDelta::try_minutes(n)),
        Interval::Second => add_delta(date, TimeDelta::try_seconds(n)),
    }
}

/// 100 ns ticks since the Unix epoch (a chrono leap second counts as its second's last tick).
fn unix_ticks(date: DateTime<Utc>) -> Option<i64> {
    let sub = i64::from(date.timestamp_subsec_nanos() / 100).min(TICKS_PER_SECOND - 1);
    date.timestamp().checked_mul(TICKS_PER_SECOND)?.checked_add(sub)
}

fn ticks_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<i64, String> {
    let too_far = || "the dates are too far apart".to_owned();
    let a = unix_ticks(from).ok_or_else(too_far)?;
    let b = unix_ticks(to).ok_or_else(too_far)?;
    b.checked_sub(a).ok_or_else(too_far)
}

/// Moves a date back to the Sunday that starts its week, keeping the time of day.
fn week_start(date: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let back = i64::from(date.weekday().num_days_from_sunday());
    date.checked_sub_signed(TimeDelta::days(back)).ok_or_else(out_of_range)
}

/// VB `DateDiff(interval, from, to)`, positive when `to` is later:
/// `yyyy` = Δyear; `q` = Δyear·4 + Δquarter; `m` = Δyear·12 + Δmonth (calendar fields, time of
/// day ignored); `d` and `y` = whole days elapsed, `h`/`n`/`s` = whole hours/minutes/seconds
/// elapsed (`Fix` of the total, truncated towards zero); `w` = whole days elapsed \ 7; `ww` moves
/// both dates back to their week's Sunday (keeping the time of day) and then takes whole days \ 7,
/// i.e. it counts Sunday boundaries crossed.
pub(crate) fn date_diff(interval_name: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<i64, String> {
    let interval = interval(interval_name)?;
    let years = i64::from(to.year()) - i64::from(from.year());
    Ok(match interval {
        Interval::Year => years,
        Interval::Quarter => years * 4 + i64::from(to.month0() / 3) - i64::from(from.month0() / 3),
        Interval::Month => years * 12 + i64::from(to.month()) - i64::from(from.month()),
        Interval::Day | Interval::DayOfYear => ticks_between(from, to)? / TICKS_PER_DAY,
        Interval::Weekday => ticks_between(from, to)? / TICKS_PER_DAY / 7,
        Interval::WeekOfYear => ticks_between(week_start(from)?, week_start(to)?)? / TICKS_PER_DAY / 7,
        Interval::Hour => ticks_between(from, to)? / TICKS_PER_HOUR,
        Interval::Minute => ticks_between(from, to)? / TICKS_PER_MINUTE,
        Interval::Second => ticks_between(from, to)? / TICKS_PER_SECOND,
    })
}

/// Parses a date string as CDate does (A17), converting to UTC; a string without an offset is UTC.
///
/// Accepted (surrounding white space ignored, names case-insensitive):
/// * ISO 8601 extended: `yyyy-MM-dd`, with `T` or a space and `HH:mm[:ss[.fffffff]]`, then an
///   optional `Z`, `±HH:mm`, `±HHmm` or `±HH`; the offset may follow the date directly
///   (`2020-03-16-07:00`, midnight at that offset). `/` or `.` may separate a year-first date;
///   month and day may have one digit.
/// * ISO 8601 basic / LDAP generalized time: `yyyyMMdd`, `yyyyMMddHHmm[ss][.f…]` and
///   `yyyyMMddTHHmmss` with the same optional zone (`20210824153045.0Z`).
/// * US: `M/d/yyyy` (or `-`, `.`; a two-digit year pivots at 2049), optionally followed by a
///   12-hour time with `AM`/`PM` (`1/15/1990 12:00:00 AM`) or a 24-hour time, and a zone.
/// * Month names: `January 15, 2021`, `Jan 15 2021`, `15 Jan 2021`, with an optional leading day
///   name (`Fri, 15 Jan 2021 10:00:00 GMT`); `UTC`/`GMT` count as zones.
/// * A time alone (`3:33 PM`) is that time on 0001-01-01, as VB's CDate does.
///
/// More than seven fraction digits are truncated to .NET's 100 ns ticks. None for anything else,
/// for invalid fields (month 13, Feb 30, hour 24) and outside the years 1–9999.
pub(crate) fn cdate(text: &str) -> Option<DateTime<Utc>> {
    let chars: Vec<char> = text.trim().chars().collect();
    if chars.is_empty() || chars.len() > 200 {
        return None;
    }
    let mut cur = Cursor::new(&chars);
    // A leading day name ("Fri, 15 Jan 2021") is allowed and ignored.
    if cur.name(&DAYS).or_else(|| cur.name(&DAYS_ABBR)).is_some() {
        cur.eat(',');
        cur.skip_whitespace();
    }
    let starts_with_time =
        matches!(cur.digit_run(), 1 | 2) && chars.get(cur.position() + cur.digit_run()) == Some(&':');
    let (year, month, day, mut time) = if starts_with_time { (1, 1, 1, None) } else { cdate_date(&mut cur)? };
    let after_date = cur.position();
    cur.skip_whitespace();
    let had_t = time.is_none() && (cur.eat('T') || cur.eat('t'));
    if time.is_none() && cur.peek().is_some_and(|c| c.is_ascii_digit()) {
        // Not an offset: digits after the date (and its separator) start a time.
        if had_t || cur.position() > after_date || starts_with_time {
            time = Some(cdate_time(&mut cur)?);
        }
    } else if had_t {
        return None;
    }
    cur.skip_whitespace();
    let offset = cdate_zone(&mut cur)?;
    cur.skip_whitespace();
    if !cur.at_end() {
        return None;
    }
    let (h, m, s, ticks) = time.unwrap_or((0, 0, 0, 0));
    build_utc(year, month, day, (h, m, s), ticks, offset)
}

fn month_name(cur: &mut Cursor<'_>) -> Option<i64> {
    // Full names first: the cursor takes the longest match within one list.
    let index = cur.name(&MONTHS).or_else(|| cur.name(&MONTHS_ABBR))?;
    cur.eat('.');
    Some(index as i64 + 1)
}

type Time = (i64, i64, i64, i64);

/// The date part of a CDate string: (year, month, day, time if the basic form carried one).
fn cdate_date(cur: &mut Cursor<'_>) -> Option<(i64, i64, i64, Option<Time>)> {
    let run = cur.digit_run();
    match run {
        0 => {
            // "January 15, 2021" / "Jan 15 2021"
            let month = month_name(cur)?;
            cur.skip_whitespace();
            let day = cur.digits(1, 2)?;
            cur.eat(',');
            cur.skip_whitespace();
            let year = cur.digits(4, 4)?;
            Some((year, month, day, None))
        }
        8 | 12 | 14 => {
            let year = cur.digits(4, 4)?;
            let month = cur.digits(2, 2)?;
            let day = cur.digits(2, 2)?;
            if run == 8 {
                return Some((year, month, day, None));
            }
            let h = cur.digits(2, 2)?;
            let m = cur.digits(2, 2)?;
            let s = if run == 14 { cur.digits(2, 2)? } else { 0 };
            let ticks = fraction(cur)?;
            Some((year, month, day, Some((h, m, s, ticks))))
        }
        4 => {
            let year = cur.digits(4, 4)?;
            let sep = cur.peek().filter(|c| matches!(c, '-' | '/' | '.'))?;
            cur.eat(sep);
            let month = cur.digits(1, 2)?;
            if !cur.eat(sep) {
                return None;
            }
            let day = cur.digits(1, 2)?;
            Some((year, month, day, None))
        }
        1 | 2 => {
            let first = cur.digits(1, 2)?;
            match cur.peek() {
                Some(sep @ ('/' | '-' | '.')) => {
                    cur.eat(sep);
                    let day = cur.digits(1, 2)?;
                    if !cur.eat(sep) {
                        return None;
                    }
                    let year = match cur.digit_run() {
                        2 => four_digit_year(cur.digits(2, 2)?),
                        4 => cur.digits(4, 4)?,
                        _ => return None,
                    };
                    Some((year, first, day, None))
                }
                Some(c) if c.is_whitespace() => {
                    // "15 Jan 2021"
                    cur.skip_whitespace();
                    let month = month_name(cur)?;
                    cur.eat(',');
                    cur.skip_whitespace();
                    let year = cur.digits(4, 4)?;
                    Some((year, month, first, None))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Optional `.fffffff` (or `,fffffff`): ticks, extra digits truncated.
fn fraction(cur: &mut Cursor<'_>) -> Option<i64> {
    let start = cur.position();
    if !(cur.eat('.') || cur.eat(',')) {
        return Some(0);
    }
    let run = cur.digit_run();
    if run == 0 {
        // Not a fraction ("." belongs to something else, which will then fail).
        cur.set_position(start);
        return Some(0);
    }
    let kept = run.min(7);
    let value = cur.digits(kept, kept)?;
    // Skip the digits beyond 100 ns.
    if run > kept {
        cur.digits(run - kept, run - kept)?;
    }
    value.checked_mul(10_i64.pow((7 - kept) as u32))
}

/// `H:mm[:ss[.f…]] [AM|PM]`, or basic `HHmm[ss][.f…]`.
fn cdate_time(cur: &mut Cursor<'_>) -> Option<Time> {
    let run = cur.digit_run();
    let (h, m, s) = match run {
        4 | 6 => {
            let h = cur.digits(2, 2)?;
            let m = cur.digits(2, 2)?;
            let s = if run == 6 { cur.digits(2, 2)? } else { 0 };
            (h, m, s)
        }
        1 | 2 => {
            let h = cur.digits(1, 2)?;
            if !cur.eat(':') {
                return None;
            }
            let m = cur.digits(2, 2)?;
            let s = if cur.eat(':') { cur.digits(2, 2)? } else { 0 };
            (h, m, s)
        }
        _ => return None,
    };
    let ticks = fraction(cur)?;
    let start = cur.position();
    cur.skip_whitespace();
    let pm = if cur.eat_word_ci("AM") {
        Some(false)
    } else if cur.eat_word_ci("PM") {
        Some(true)
    } else {
        cur.set_position(start);
        None
    };
    let h = apply_am_pm(h, pm)?;
    Some((h, m, s, ticks))
}

/// Optional zone at the end: `Z`, `UTC`, `GMT` (optionally followed by an offset) or an offset.
/// Returns seconds east of UTC (0 when absent); None if something offset-like is malformed.
fn cdate_zone(cur: &mut Cursor<'_>) -> Option<i64> {
    if cur.at_end() {
        return Some(0);
    }
    if cur.eat('Z') || cur.eat('z') {
        return Some(0);
    }
    if (cur.eat_word_ci("UTC") || cur.eat_word_ci("GMT")) && cur.at_end() {
        return Some(0);
    }
    // "+05:30", "+0530", "+05", "+5"
    cur.offset(false, MinutesPart::Optional)
}

/// The default rendering of a DateTime value: `M/d/yyyy h:mm:ss tt` in UTC, e.g.
/// `7/2/2021 3:33:38 PM`.
pub(crate) fn format_default(date: DateTime<Utc>) -> String {
    dotnet_format::format(date, "M/d/yyyy h:mm:ss tt")
}

/// FormatDateTime's output side: `date` rendered with a .NET custom date format string (or a
/// one-character standard format); see `dotnet_format`.
pub(crate) fn format_with(date: DateTime<Utc>, dotnet_format: &str) -> String {
    dotnet_format::format(date, dotnet_format)
}

/// FormatDateTime's input side: `text` parsed with a .NET custom date format string (exact match,
/// surrounding white space allowed); an offset in the text is converted to UTC, no offset = UTC.
pub(crate) fn parse_with_format(text: &str, dotnet_format: &str) -> Option<DateTime<Utc>> {
    dotnet_format::parse(text, dotnet_format)
}

/// AD FILETIME (accountExpires, NumFromDate): 100 ns ticks since 1601-01-01T00:00:00Z, i.e.
/// `(unix_secs + 11_644_473_600) * 10^7 + sub-second ticks`. Dates before 1601 give negative
/// numbers (.NET's `ToFileTimeUtc` would throw); the arithmetic saturates instead of overflowing,
/// which cannot happen for the years 1–9999.
pub(crate) fn to_filetime(date: DateTime<Utc>) -> i64 {
    let sub = i64::from(date.timestamp_subsec_nanos() / 100).min(TICKS_PER_SECOND - 1);
    date.timestamp().saturating_add(FILETIME_EPOCH_OFFSET_SECS).saturating_mul(TICKS_PER_SECOND).saturating_add(sub)
}

/// DateFromNum: the instant of an AD FILETIME. Like .NET's `DateTime.FromFileTimeUtc`, only
/// 0 (1601-01-01) to 2,650,467,743,999,999,999 (9999-12-31T23:59:59.9999999Z) are dates; anything
/// else is None — in particular negative numbers and 9223372036854775807 (`0x7FFFFFFFFFFFFFFF`,
/// AD's "never expires"), which is a marker, not a date.
pub(crate) fn from_filetime(ticks: i64) -> Option<DateTime<Utc>> {
    if !(0..=MAX_FILETIME).contains(&ticks) {
        return None;
    }
    let secs = ticks.div_euclid(TICKS_PER_SECOND) - FILETIME_EPOCH_OFFSET_SECS;
    let nanos = u32::try_from(ticks.rem_euclid(TICKS_PER_SECOND) * 100).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    /// `now` of every WDG/SFG vector (§6.0).
    fn now() -> DateTime<Utc> {
        utc(2025, 7, 30, 12, 0, 0)
    }

    fn days_from_now(date: &str) -> i64 {
        date_diff("d", now(), cdate(date).unwrap()).unwrap()
    }

    /// `NumFromDate(Join("", FormatDateTime(src, inFmt, "yyyy-MM-dd"), suffix))` for a string source.
    fn num_from_formatted(src: &str, in_fmt: &str, suffix: &str) -> i64 {
        let parsed = parse_with_format(src, in_fmt).unwrap();
        let text = format!("{}{}", format_with(parsed, "yyyy-MM-dd"), suffix);
        to_filetime(cdate(&text).unwrap())
    }

    // ---- DateAdd ----

    #[test]
    fn date_add_every_interval() {
        let d = utc(2021, 1, 31, 10, 30, 0);
        assert_eq!(date_add("yyyy", 1.0, d).unwrap(), utc(2022, 1, 31, 10, 30, 0));
        assert_eq!(date_add("q", 1.0, d).unwrap(), utc(2021, 4, 30, 10, 30, 0));
        assert_eq!(date_add("m", 1.0, d).unwrap(), utc(2021, 2, 28, 10, 30, 0));
        assert_eq!(date_add("y", 1.0, d).unwrap(), utc(2021, 2, 1, 10, 30, 0));
        assert_eq!(date_add("d", 1.0, d).unwrap(), utc(2021, 2, 1, 10, 30, 0));
        assert_eq!(date_add("w", 1.0, d).unwrap(), utc(2021, 2, 1, 10, 30, 0));
        assert_eq!(date_add("ww", 1.0, d).unwrap(), utc(2021, 2, 7, 10, 30, 0));
        assert_eq!(date_add("h", 14.0, d).unwrap(), utc(2021, 2, 1, 0, 30, 0));
        assert_eq!(date_add("n", -31.0, d).unwrap(), utc(2021, 1, 31, 9, 59, 0));
        assert_eq!(date_add("s", 3600.0, d).unwrap(), utc(2021, 1, 31, 11, 30, 0));
    }

    #[test]
    fn date_add_interval_is_case_insensitive_and_unknown_ones_are_errors() {
        let d = utc(2021, 1, 1, 0, 0, 0);
        assert_eq!(date_add("YYYY", 1.0, d).unwrap(), utc(2022, 1, 1, 0, 0, 0));
        assert_eq!(date_add("WW", 1.0, d).unwrap(), utc(2021, 1, 8, 0, 0, 0));
        for bad in ["", "yy", "x", "days", " d", "mm"] {
            let err = date_add(bad, 1.0, d).unwrap_err();
            assert!(err.contains("yyyy") && err.contains("ww"), "{bad}: {err}");
            assert!(date_diff(bad, d, d).is_err(), "{bad}");
        }
    }

    #[test]
    fn date_add_truncates_the_number_towards_zero() {
        let d = utc(2021, 1, 1, 0, 0, 0);
        assert_eq!(date_add("d", 1.9, d).unwrap(), utc(2021, 1, 2, 0, 0, 0));
        assert_eq!(date_add("d", -1.9, d).unwrap(), utc(2020, 12, 31, 0, 0, 0));
        assert_eq!(date_add("h", 0.99, d).unwrap(), d);
        assert_eq!(date_add("d", -0.5, d).unwrap(), d);
    }

    #[test]
    fn date_add_clamps_the_day_at_month_ends() {
        assert_eq!(date_add("m", 1.0, utc(2021, 3, 31, 8, 0, 0)).unwrap(), utc(2021, 4, 30, 8, 0, 0));
        assert_eq!(date_add("m", -1.0, utc(2021, 3, 31, 8, 0, 0)).unwrap(), utc(2021, 2, 28, 8, 0, 0));
        assert_eq!(date_add("m", 1.0, utc(2024, 1, 31, 0, 0, 0)).unwrap(), utc(2024, 2, 29, 0, 0, 0));
        assert_eq!(date_add("q", -1.0, utc(2021, 5, 31, 0, 0, 0)).unwrap(), utc(2021, 2, 28, 0, 0, 0));
        // Clamping does not come back: Jan 31 + 1 month + 1 month = Mar 28.
        let feb = date_add("m", 1.0, utc(2021, 1, 31, 0, 0, 0)).unwrap();
        assert_eq!(date_add("m", 1.0, feb).unwrap(), utc(2021, 3, 28, 0, 0, 0));
    }

    #[test]
    fn date_add_leap_years() {
        let leap_day = utc(2024, 2, 29, 12, 0, 0);
        assert_eq!(date_add("yyyy", 1.0, leap_day).unwrap(), utc(2025, 2, 28, 12, 0, 0));
        assert_eq!(date_add("yyyy", 4.0, leap_day).unwrap(), utc(2028, 2, 29, 12, 0, 0));
        assert_eq!(date_add("yyyy", -100.0, leap_day).unwrap(), utc(1924, 2, 29, 12, 0, 0));
        // 1900 is not a leap year, 2000 is.
        assert_eq!(date_add("yyyy", -124.0, leap_day).unwrap(), utc(1900, 2, 28, 12, 0, 0));
        assert_eq!(date_add("d", 1.0, utc(2000, 2, 28, 0, 0, 0)).unwrap(), utc(2000, 2, 29, 0, 0, 0));
        assert_eq!(date_add("d", 1.0, utc(1900, 2, 28, 0, 0, 0)).unwrap(), utc(1900, 3, 1, 0, 0, 0));
        assert_eq!(date_add("d", 366.0, utc(2024, 1, 1, 0, 0, 0)).unwrap(), utc(2025, 1, 1, 0, 0, 0));
    }

    #[test]
    fn date_add_out_of_range_is_an_error_not_a_panic() {
        let d = utc(9999, 12, 31, 0, 0, 0);
        assert!(date_add("d", 1.0, d).is_err());
        assert!(date_add("yyyy", 1.0, d).is_err());
        assert!(date_add("yyyy", -9999.0, d).is_err());
        assert!(date_add("m", -1.0, utc(1, 1, 1, 0, 0, 0)).is_err());
        assert!(date_add("s", -1.0, utc(1, 1, 1, 0, 0, 0)).is_err());
        assert_eq!(date_add("yyyy", -9998.0, d).unwrap(), utc(1, 12, 31, 0, 0, 0));
        for n in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 3e9, -3e9, 1e300] {
            for i in ["yyyy", "q", "m", "y", "d", "w", "ww", "h", "n", "s"] {
                assert!(date_add(i, n, d).is_err(), "{i} {n}");
            }
        }
        for i in ["yyyy", "q", "m", "y", "d", "w", "ww", "h", "n", "s"] {
            for n in [f64::from(i32::MAX), f64::from(i32::MIN)] {
                for base in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, d] {
                    drop(date_add(i, n, base));
                }
            }
        }
        assert!(date_add("n", f64::from(i32::MAX), utc(2000, 1, 1, 0, 0, 0)).is_ok());
    }

    // ---- DateDiff ----

    #[test]
    fn date_diff_truncates_elapsed_time() {
        let a = utc(2025, 7, 30, 12, 0, 0);
        let b = utc(2025, 8, 10, 0, 0, 0);
        assert_eq!(date_diff("d", a, b).unwrap(), 10); // 10.5 days
        assert_eq!(date_diff("d", b, a).unwrap(), -10);
        assert_eq!(date_diff("y", a, b).unwrap(), 10);
        assert_eq!(date_diff("h", a, b).unwrap(), 252);
        assert_eq!(date_diff("n", a, b).unwrap(), 252 * 60);
        assert_eq!(date_diff("s", a, b).unwrap(), 252 * 3600);
        assert_eq!(date_diff("s", a, a + TimeDelta::milliseconds(999)).unwrap(), 0);
        assert_eq!(date_diff("s", a + TimeDelta::milliseconds(999), a).unwrap(), 0);
        assert_eq!(date_diff("d", a, a).unwrap(), 0);
    }

    #[test]
    fn date_diff_calendar_intervals_ignore_the_time_of_day() {
        let a = utc(2020, 12, 31, 23, 59, 59);
        let b = utc(2021, 1, 1, 0, 0, 0);
        assert_eq!(date_diff("yyyy", a, b).unwrap(), 1);
        assert_eq!(date_diff("m", a, b).unwrap(), 1);
        assert_eq!(date_diff("q", a, b).unwrap(), 1);
        assert_eq!(date_diff("yyyy", b, a).unwrap(), -1);
        assert_eq!(date_diff("m", utc(2019, 11, 15, 0, 0, 0), utc(2021, 2, 1, 0, 0, 0)).unwrap(), 15);
        assert_eq!(date_diff("q", utc(2021, 3, 31, 0, 0, 0), utc(2021, 4, 1, 0, 0, 0)).unwrap(), 1);
        assert_eq!(date_diff("q", utc(2021, 1, 1, 0, 0, 0), utc(2021, 3, 31, 0, 0, 0)).unwrap(), 0);
        assert_eq!(date_diff("yyyy", utc(2021, 1, 1, 0, 0, 0), utc(2021, 12, 31, 0, 0, 0)).unwrap(), 0);
    }

    #[test]
    fn date_diff_weeks_ww_counts_sundays_and_gives_minus_493() {
        // A16: from a Tuesday to a Thursday 493 Sunday-weeks earlier; plain days/7 gives -492.
        let from = cdate("2021-08-24").unwrap();
        let to = cdate("2012-03-15").unwrap();
        assert_eq!(date_diff("ww", from, to).unwrap(), -493);
        assert_eq!(date_diff("w", from, to).unwrap(), -492);
        assert_eq!(date_diff("ww", to, from).unwrap(), 493);
        // Saturday to the next day (Sunday): one week boundary, zero whole weeks elapsed.
        let sat = utc(2021, 8, 28, 12, 0, 0);
        let sun = utc(2021, 8, 29, 12, 0, 0);
        assert_eq!(date_diff("ww", sat, sun).unwrap(), 1);
        assert_eq!(date_diff("w", sat, sun).unwrap(), 0);
        // Same week: no boundary.
        assert_eq!(date_diff("ww", sun, sun + TimeDelta::days(6)).unwrap(), 0);
        // The time of day survives the move to Sunday: Sun 12:00 -> next Sun 11:00 is 6.96 days.
        assert_eq!(date_diff("ww", sun, utc(2021, 9, 5, 11, 0, 0)).unwrap(), 0);
        assert_eq!(date_diff("ww", sun, utc(2021, 9, 5, 12, 0, 0)).unwrap(), 1);
    }

    #[test]
    fn date_diff_extreme_dates_do_not_panic() {
        let lo = DateTime::<Utc>::MIN_UTC;
        let hi = DateTime::<Utc>::MAX_UTC;
        for i in ["yyyy", "q", "m", "y", "d", "w", "ww", "h", "n", "s"] {
            drop(date_diff(i, lo, hi));
            drop(date_diff(i, hi, lo));
            assert!(date_diff(i, utc(1, 1, 1, 0, 0, 0), utc(9999, 12, 31, 23, 59, 59)).is_ok());
        }
        assert_eq!(date_diff("s", utc(1, 1, 1, 0, 0, 0), utc(9999, 12, 31, 23, 59, 59)).unwrap(), 315_537_897_599);
    }

    // ---- CDate ----

    #[test]
    fn cdate_iso_forms() {
        assert_eq!(cdate("2021-08-24"), Some(utc(2021, 8, 24, 0, 0, 0)));
        assert_eq!(cdate(" 2021-08-24 "), Some(utc(2021, 8, 24, 0, 0, 0)));
        assert_eq!(cdate("2021-8-4"), Some(utc(2021, 8, 4, 0, 0, 0)));
        assert_eq!(cdate("2021/08/24"), Some(utc(2021, 8, 24, 0, 0, 0)));
        assert_eq!(cdate("2021-08-24T10:11:12"), Some(utc(2021, 8, 24, 10, 11, 12)));
        assert_eq!(cdate("2021-08-24t10:11"), Some(utc(2021, 8, 24, 10, 11, 0)));
        assert_eq!(cdate("2021-08-24T10:11:12Z"), Some(utc(2021, 8, 24, 10, 11, 12)));
        assert_eq!(cdate("2021-08-24 10:11:12Z"), Some(utc(2021, 8, 24, 10, 11, 12)));
        assert_eq!(cdate("2021-08-24T10:11:12+02:00"), Some(utc(2021, 8, 24, 8, 11, 12)));
        assert_eq!(cdate("2021-08-24T10:11:12 +0200"), Some(utc(2021, 8, 24, 8, 11, 12)));
        assert_eq!(cdate("2021-08-24T10:11:12-05"), Some(utc(2021, 8, 24, 15, 11, 12)));
        assert_eq!(
            cdate("2021-08-24T10:11:12.1234567Z"),
            Some(utc(2021, 8, 24, 10, 11, 12) + TimeDelta::nanoseconds(123_456_700))
        );
        assert_eq!(
            cdate("2021-08-24T10:11:12.123456789Z"),
            Some(utc(2021, 8, 24, 10, 11, 12) + TimeDelta::nanoseconds(123_456_700))
        );
        assert_eq!(cdate("2021-08-24Z"), Some(utc(2021, 8, 24, 0, 0, 0)));
    }

    #[test]
    fn cdate_date_with_offset_and_no_time() {
        // §3 CDate row / F: "2020-03-16-07:00" is 3/16/2020 7:00:00 AM UTC.
        let d = cdate("2020-03-16-07:00").unwrap();
        assert_eq!(d, utc(2020, 3, 16, 7, 0, 0));
        assert_eq!(format_default(d), "3/16/2020 7:00:00 AM");
        assert_eq!(cdate("2020-03-16+01:00"), Some(utc(2020, 3, 15, 23, 0, 0)));
    }

    #[test]
    fn cdate_us_forms() {
        assert_eq!(cdate("1/15/1990 12:00:00 AM"), Some(utc(1990, 1, 15, 0, 0, 0)));
        assert_eq!(cdate("7/2/2021 3:33:38 PM"), Some(utc(2021, 7, 2, 15, 33, 38)));
        assert_eq!(cdate("07/02/2021 03:33:38 pm"), Some(utc(2021, 7, 2, 15, 33, 38)));
        assert_eq!(cdate("7/2/2021 12:00:00 PM"), Some(utc(2021, 7, 2, 12, 0, 0)));
        assert_eq!(cdate("7/2/2021 3:33PM"), Some(utc(2021, 7, 2, 15, 33, 0)));
        assert_eq!(cdate("7/2/2021 15:33:38"), Some(utc(2021, 7, 2, 15, 33, 38)));
        assert_eq!(cdate("7/2/2021"), Some(utc(2021, 7, 2, 0, 0, 0)));
        assert_eq!(cdate("12/31/9999 12:00:00 AM"), Some(utc(9999, 12, 31, 0, 0, 0)));
        assert_eq!(cdate("7/2/21"), Some(utc(2021, 7, 2, 0, 0, 0)));
        assert_eq!(cdate("7/2/75"), Some(utc(1975, 7, 2, 0, 0, 0)));
        assert_eq!(cdate("7/2/2021 3:33:38 PM -05:00"), Some(utc(2021, 7, 2, 20, 33, 38)));
        assert_eq!(cdate("3:33 PM"), Some(utc(1, 1, 1, 15, 33, 0)));
    }

    #[test]
    fn cdate_basic_and_named_forms() {
        assert_eq!(cdate("20210824"), Some(utc(2021, 8, 24, 0, 0, 0)));
        assert_eq!(cdate("20210824153045.0Z"), Some(utc(2021, 8, 24, 15, 30, 45)));
        assert_eq!(cdate("20210824153045Z"), Some(utc(2021, 8, 24, 15, 30, 45)));
        assert_eq!(cdate("202108241530"), Some(utc(2021, 8, 24, 15, 30, 0)));
        assert_eq!(cdate("20210824T153045Z"), Some(utc(2021, 8, 24, 15, 30, 45)));
        assert_eq!(cdate("20210824153045.5-0100"), Some(utc(2021, 8, 24, 16, 30, 45) + TimeDelta::milliseconds(500)));
        assert_eq!(cdate("January 15, 2021"), Some(utc(2021, 1, 15, 0, 0, 0)));
        assert_eq!(cdate("jan 15 2021 10:00"), Some(utc(2021, 1, 15, 10, 0, 0)));
        assert_eq!(cdate("15 Jan 2021"), Some(utc(2021, 1, 15, 0, 0, 0)));
        assert_eq!(cdate("Fri, 15 Jan 2021 10:00:00 GMT"), Some(utc(2021, 1, 15, 10, 0, 0)));
        assert_eq!(cdate("Friday, January 15, 2021 10:00:00 AM UTC"), Some(utc(2021, 1, 15, 10, 0, 0)));
    }

    #[test]
    fn cdate_rejects_what_is_not_a_date() {
        for bad in [
            "",
            "   ",
            "hello",
            "2021",
            "45000",
            "2021-13-01",
            "2021-02-29",
            "2021-02-30T00:00:00",
            "2021-08-24T24:00:00",
            "2021-08-24T10:60",
            "2021-08-24T10:11:12+15:00",
            "2021-08-24T10:11:12+",
            "2021-08-24T",
            "2021-08-24 junk",
            "2021-08/24",
            "13:00 AM",
            "0000-01-01",
            "10000-01-01",
            "0001-01-01+01:00",
            "1/15/199",
            "1.5",
            "2021-08-24T10:11:12.Z",
        ] {
            assert_eq!(cdate(bad), None, "{bad:?}");
        }
        assert_eq!(cdate("2024-02-29"), Some(utc(2024, 2, 29, 0, 0, 0)));
        assert_eq!(cdate("9999-12-31T23:59:59"), Some(utc(9999, 12, 31, 23, 59, 59)));
        assert_eq!(cdate("0001-01-01"), Some(utc(1, 1, 1, 0, 0, 0)));
    }

    #[test]
    fn cdate_reads_the_default_rendering_back() {
        for d in [
            utc(2021, 7, 2, 15, 33, 38),
            utc(2021, 7, 2, 0, 0, 0),
            utc(2021, 12, 31, 12, 59, 59),
            utc(1, 1, 1, 0, 0, 0),
            utc(9999, 12, 31, 23, 59, 59),
        ] {
            assert_eq!(cdate(&format_default(d)), Some(d));
            assert_eq!(parse_with_format(&format_default(d), "M/d/yyyy h:mm:ss tt"), Some(d));
        }
    }

    // ---- rendering ----

    #[test]
    fn format_default_matches_the_documented_sample() {
        // P02 / §2.4: "7/2/2021 3:33:38 PM"
        assert_eq!(format_default(utc(2021, 7, 2, 15, 33, 38)), "7/2/2021 3:33:38 PM");
        assert_eq!(format_default(utc(2021, 12, 31, 0, 5, 9)), "12/31/2021 12:05:09 AM");
        assert_eq!(format_default(utc(1, 1, 1, 12, 0, 0)), "1/1/0001 12:00:00 PM");
    }

    #[test]
    fn format_with_and_parse_with_format_delegate_to_the_dotnet_formats() {
        let d = utc(2025, 7, 30, 12, 0, 0);
        assert_eq!(format_with(d, "yyyy-MM-dd"), "2025-07-30");
        assert_eq!(format_with(d, "yyyyMMddHHmmss.fZ"), "20250730120000.0Z");
        assert_eq!(parse_with_format("20250730120000.0Z", "yyyyMMddHHmmss.fZ"), Some(d));
        assert_eq!(parse_with_format("2025-07-30", "M/d/yyyy"), None);
    }

    // ---- FILETIME ----

    #[test]
    fn filetime_documented_values() {
        // §3 DateFromNum row: 129699324000000000 is 2012-01-01 23:00 UTC.
        assert_eq!(from_filetime(129_699_324_000_000_000), Some(utc(2012, 1, 1, 23, 0, 0)));
        assert_eq!(to_filetime(utc(2012, 1, 1, 23, 0, 0)), 129_699_324_000_000_000);
        assert_eq!(from_filetime(0), Some(utc(1601, 1, 1, 0, 0, 0)));
        assert_eq!(to_filetime(utc(1601, 1, 1, 0, 0, 0)), 0);
        assert_eq!(to_filetime(utc(1970, 1, 1, 0, 0, 0)), 116_444_736_000_000_000);
        assert_eq!(to_filetime(utc(1600, 12, 31, 23, 59, 59)), -10_000_000);
    }

    #[test]
    fn filetime_never_and_out_of_range_values_are_none() {
        // "never" (accountExpires 0x7FFFFFFFFFFFFFFF) is not a date.
        assert_eq!(from_filetime(9_223_372_036_854_775_807), None);
        assert_eq!(from_filetime(i64::MAX), None);
        assert_eq!(from_filetime(-1), None);
        assert_eq!(from_filetime(i64::MIN), None);
        assert_eq!(from_filetime(MAX_FILETIME + 1), None);
        let max = from_filetime(MAX_FILETIME).unwrap();
        assert_eq!(max, utc(9999, 12, 31, 23, 59, 59) + TimeDelta::nanoseconds(999_999_900));
        assert_eq!(to_filetime(max), MAX_FILETIME);
        // Saturates instead of overflowing.
        let _ = to_filetime(DateTime::<Utc>::MIN_UTC);
        let _ = to_filetime(DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn filetime_round_trips() {
        for ticks in [
            0,
            1,
            9_999_999,
            10_000_000,
            116_444_736_000_000_000,
            129_699_324_000_000_000,
            134_117_171_990_000_000,
            157_469_327_991_234_567,
            MAX_FILETIME - 1,
            MAX_FILETIME,
        ] {
            assert_eq!(to_filetime(from_filetime(ticks).unwrap()), ticks, "{ticks}");
        }
        for d in [
            utc(1601, 1, 1, 0, 0, 1),
            utc(2024, 2, 29, 23, 59, 59) + TimeDelta::nanoseconds(100),
            utc(9999, 12, 31, 0, 0, 0),
            utc(2000, 1, 1, 0, 0, 0),
        ] {
            assert_eq!(from_filetime(to_filetime(d)), Some(d));
        }
        // Sub-100 ns precision is dropped.
        let d = utc(2020, 1, 1, 0, 0, 0) + TimeDelta::nanoseconds(199);
        assert_eq!(from_filetime(to_filetime(d)), Some(utc(2020, 1, 1, 0, 0, 0) + TimeDelta::nanoseconds(100)));
    }

    // ---- §6 vectors (now = 2025-07-30T12:00:00Z unless stated) ----

    #[test]
    fn v096_pre_hire_window() {
        // V096: StatusHireDate 2025-08-10 -> 10 (> 5) -> "False"
        assert_eq!(days_from_now("2025-08-10"), 10);
        // V096b / V096c: 2025-08-02 -> 2 (not > 5)
        assert_eq!(days_from_now("2025-08-02"), 2);
    }

    #[test]
    fn s12_s13_hide_from_address_lists() {
        // S12: startDate 2025-01-15 -> DateDiff(d, start, now) = 196 >= -1; endDate 2025-12-31 -> 153 >= 0 -> "FALSE"
        let start = cdate("2025-01-15").unwrap();
        assert_eq!(date_diff("d", start, now()).unwrap(), 196);
        assert_eq!(days_from_now("2025-12-31"), 153);
        // S13: endDate 2025-06-30 -> -30 < 0 -> "TRUE"
        assert_eq!(days_from_now("2025-06-30"), -30);
        // The fallbacks of S12: DateAdd("d", "10", Now()) and DateAdd("d", "1", Now()).
        let ten = date_add("d", 10.0, now()).unwrap();
        assert_eq!(ten, utc(2025, 8, 9, 12, 0, 0));
        assert_eq!(date_diff("d", ten, now()).unwrap(), -10);
        let one = date_add("d", 1.0, now()).unwrap();
        assert_eq!(date_diff("d", now(), one).unwrap(), 1);
        // Via the default rendering (a DateTime flowing through a string) nothing changes.
        assert_eq!(cdate(&format_default(ten)), Some(ten));
    }

    #[test]
    fn s14_s15_complex_employee_status() {
        // S14: hire 2025-07-27 -> DateDiff(d, hire, now) = 3; custom 2025-07-30 -> 0 -> "False"
        let diff = |s: &str| date_diff("d", cdate(s).unwrap(), now()).unwrap();
        assert_eq!(diff("2025-07-27"), 3);
        assert_eq!(diff("2025-07-30"), 0);
        // S15: custom 2025-07-29 -> 1 -> "True"
        assert_eq!(diff("2025-07-29"), 1);
    }

    #[test]
    fn s16_never_literal_is_not_a_filetime_date() {
        // S16 flows "9223372036854775807" as a string; as a FILETIME it is "never", not a date.
        assert_eq!(from_filetime(9_223_372_036_854_775_807), None);
    }

    #[test]
    fn s48_soft_delete_formats_now() {
        // S48: FormatDateTime(Now(), , "M/d/yyyy h:mm:ss tt", "yyyy-MM-dd") -> "2025-07-30"
        assert_eq!(format_with(now(), "yyyy-MM-dd"), "2025-07-30");
        // The same through Now()'s string form and the inputFormat.
        let text = format_default(now());
        assert_eq!(text, "7/30/2025 12:00:00 PM");
        let parsed = parse_with_format(&text, "M/d/yyyy h:mm:ss tt").unwrap();
        assert_eq!(format_with(parsed, "yyyy-MM-dd"), "2025-07-30");
    }

    #[test]
    fn s50_s51_termination_ou() {
        // S50: 2025-07-10 -> -20 <= -14 -> DELETED; S51: 2025-07-25 -> -5 -> department OU
        assert_eq!(days_from_now("2025-07-10"), -20);
        assert_eq!(days_from_now("2025-07-25"), -5);
        // the empty-date fallback "9999-01-01" parses
        assert!(days_from_now("9999-01-01") > 0);
    }

    #[test]
    fn s52_s53_s55_writeback_needs_fix_and_midday_now() {
        // S52: 2025-07-31 -> 0.5 days -> 0 (<> 1) -> dropped
        assert_eq!(days_from_now("2025-07-31"), 0);
        // S53 / S55: 2025-08-01 -> 1.5 days -> 1 -> mail flows
        assert_eq!(days_from_now("2025-08-01"), 1);
    }

    #[test]
    fn w17_to_w26_pre_hire() {
        // W17, W25: 2025-08-10 -> 10 (<= 14) ; W18, W24, W26: 2025-09-15 -> 46 (> 14)
        assert_eq!(days_from_now("2025-08-10"), 10);
        assert_eq!(days_from_now("2025-09-15"), 46);
        // W21: 2025-08-15 -> 15 (not < 7) -> "True"; W22: 2025-08-05 -> 5 (< 7) -> "False"
        assert_eq!(days_from_now("2025-08-15"), 15);
        assert_eq!(days_from_now("2025-08-05"), 5);
        // W19's fallback for an empty hire date
        assert!(days_from_now("9999-01-01") >= 7);
    }

    #[test]
    fn w31_w32_terminated_ou() {
        // W31: 2025-07-25 -> -5 <= 0 -> Leavers; W32: 2025-08-15 -> 15 -> city OU
        assert_eq!(days_from_now("2025-07-25"), -5);
        assert_eq!(days_from_now("2025-08-15"), 15);
        assert!(days_from_now("9999-12-31") > 0);
    }

    #[test]
    fn w37_w38_hide_from_address_lists() {
        // W37: now 2025-07-30T12 -> 2025-07-31: 0 >= 0 -> "TRUE"
        assert_eq!(days_from_now("2025-07-31"), 0);
        // W38: now 2025-08-01T12 -> 2025-07-31: -1.5 -> -1 -> "FALSE"
        let w38_now = utc(2025, 8, 1, 12, 0, 0);
        assert_eq!(date_diff("d", w38_now, cdate("2025-07-31").unwrap()).unwrap(), -1);
    }

    #[test]
    fn w40_w41_writeback_username() {
        // W40: 2025-07-15 -> -15 (not > 0) -> UPN; W41: 2025-08-15 -> 15 > 0 -> dropped
        assert_eq!(days_from_now("2025-07-15"), -15);
        assert_eq!(days_from_now("2025-08-15"), 15);
    }

    #[test]
    fn x04_to_x08_rehire_and_department_flow() {
        // X04, X06, X08: 2025-08-15 -> 15 >= 0; X05, X07: 2025-07-15 -> -15 < 0
        assert_eq!(days_from_now("2025-08-15"), 15);
        assert_eq!(days_from_now("2025-07-15"), -15);
    }

    #[test]
    fn x23_account_expiration() {
        // X23 (out, not doc_out): 12/31/2025 12:00:00 AM -> 2025-12-31 23:59:59-05:00
        assert_eq!(
            num_from_formatted("12/31/2025 12:00:00 AM", "M/d/yyyy hh:mm:ss tt", " 23:59:59-05:00"),
            134_117_171_990_000_000
        );
    }

    #[test]
    fn x24_dateadd_into_formatdatetime() {
        // X24 PM branch: DateAdd("yyyy", 60, CDate("1/15/1990 12:00:00 AM")) is a DateTime, so
        // FormatDateTime ignores the inputFormat (A18).
        let dob = cdate("1/15/1990 12:00:00 AM").unwrap();
        let plus60 = date_add("yyyy", 60.0, dob).unwrap();
        assert_eq!(plus60, utc(2050, 1, 15, 0, 0, 0));
        let text = format!("{} 23:59:59-05:00", format_with(plus60, "yyyy-MM-dd"));
        assert_eq!(to_filetime(cdate(&text).unwrap()), 141_703_955_990_000_000);
        // Through its string form ("1/15/2050 12:00:00 AM") the inputFormat matches too.
        assert_eq!(
            num_from_formatted(&format_default(plus60), "M/d/yyyy hh:mm:ss tt", " 23:59:59-05:00"),
            141_703_955_990_000_000
        );
        // X24 note, CON branch
        assert_eq!(
            num_from_formatted("12/31/2025 12:00:00 AM", "M/d/yyyy hh:mm:ss tt", " 23:59:59-05:00"),
            134_117_171_990_000_000
        );
    }

    #[test]
    fn x25_event_reason_expiration() {
        // X25: SEVUNSATP with 8/15/2025 -> 2025-08-15 23:59:59-08:00
        assert_eq!(
            num_from_formatted("8/15/2025 12:00:00 AM", "M/d/yyyy hh:mm:ss tt", " 23:59:59-08:00"),
            133_998_047_990_000_000
        );
        // X25 note: REGULAR with 9/30/2025
        assert_eq!(
            num_from_formatted("9/30/2025 12:00:00 AM", "M/d/yyyy hh:mm:ss tt", " 23:59:59-08:00"),
            134_037_791_990_000_000
        );
    }

    #[test]
    fn x26_date_format_handling() {
        // X26: the 9999 key selects NumFromDate("2099-12-31T23:59:59-04:00")
        assert_eq!(to_filetime(cdate("2099-12-31T23:59:59-04:00").unwrap()), 157_469_327_990_000_000);
        // X26 note: endDate 8/15/2025 -> "2025-08-15T23:59:59-04:00"
        assert_eq!(
            num_from_formatted("8/15/2025 12:00:00 AM", "M/d/yyyy hh:mm:ss tt", "T23:59:59-04:00"),
            133_997_903_990_000_000
        );
        // Why the Switch must be lazy: for 12/31/9999 the default branch would ask for
        // 9999-12-31T23:59:59-04:00, which is in the year 10000 in UTC, so CDate/NumFromDate fail.
        let day = parse_with_format("12/31/9999 12:00:00 AM", "M/d/yyyy hh:mm:ss tt").unwrap();
        let text = format!("{}T23:59:59-04:00", format_with(day, "yyyy-MM-dd"));
        assert_eq!(text, "9999-12-31T23:59:59-04:00");
        assert_eq!(cdate(&text), None);
    }

    #[test]
    fn x27_offset_input_format() {
        // X27: FormatDateTime("2025-12-31-08:00", , "yyyy-MM-ddzzz", "yyyy-MM-dd") then T23:59:59-08:00
        let parsed = parse_with_format("2025-12-31-08:00", "yyyy-MM-ddzzz").unwrap();
        assert_eq!(parsed, utc(2025, 12, 31, 8, 0, 0));
        assert_eq!(num_from_formatted("2025-12-31-08:00", "yyyy-MM-ddzzz", "T23:59:59-08:00"), 134_117_279_990_000_000);
    }

    #[test]
    fn x28_dateadd_years_then_format() {
        // X28: DateAdd("yyyy", 5, CDate("2025-01-15")) -> 2030-01-15 -> " 23:59:59-05:00"
        let plus5 = date_add("yyyy", 5.0, cdate("2025-01-15").unwrap()).unwrap();
        let text = format!("{} 23:59:59-05:00", format_with(plus5, "yyyy-MM-dd"));
        assert_eq!(to_filetime(cdate(&text).unwrap()), 135_392_435_990_000_000);
        // The stated inputFormat "yyyy-MM-dd" does not match the DateTime's string form (A18).
        assert_eq!(parse_with_format(&format_default(plus5), "yyyy-MM-dd"), None);
    }

    #[test]
    fn no_panic_sweep() {
        let inputs = [
            "",
            "-",
            "+",
            "Z",
            "T",
            "1",
            "12:",
            "12:3",
            "99999999999999999999999",
            "2021-08-24T10:11:12.99999999999999999999999999Z",
            "2021-08-24T10:11:12+99:99",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "😀2021-01-01",
            "2021-01-01😀",
            "Ｊａｎ 1 2021",
            "١٢/١٢/٢٠٢١",
            "Jan",
            "Friday",
            "Fri,",
            "1 Jan",
            "/ / /",
            "--",
            "2021--01",
            "12/31/9999 11:59:59 PM -14:00",
        ];
        for i in inputs {
            let _ = cdate(i);
            for f in ["yyyy-MM-ddzzz", "M/d/yyyy h:mm:ss tt", i, "", "o"] {
                let _ = parse_with_format(i, f);
            }
            for d in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, now()] {
                let _ = format_with(d, i);
                for interval in ["d", "ww", "m", i] {
                    assert!(date_add(interval, 1e9, d).is_err());
                    drop(date_diff(interval, d, now()));
                }
            }
        }
        assert_eq!(cdate("9999-12-31T23:59:59-14:00"), None);
        assert!(!format_default(DateTime::<Utc>::MAX_UTC).is_empty());
    }
}
