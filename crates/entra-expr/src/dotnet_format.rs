//! .NET custom date and time format strings (`yyyy-MM-dd`, `M/d/yyyy h:mm:ss tt`, …), used by
//! `FormatDateTime` both to parse its source (inputFormat) and to render the result (outputFormat).
//!
//! One token list drives both directions, so whatever we can print we can read back. The culture is
//! fixed: invariant month and day names, `:` and `/` separators, `AM`/`PM`. All dates are UTC, so
//! `z`/`zz`/`zzz` print `+0`/`+00`/`+00:00` and `K` prints `Z`.
//!
//! Supported specifiers (as in .NET): `y…` (`y`/`yy` = year mod 100, three or more = the year padded
//! to that width), `M MM MMM MMMM`, `d dd ddd dddd`, `H HH h hh m mm s ss`, `f`…`fffffff`,
//! `F`…`FFFFFFF`, `t tt`, `z zz zzz`, `K`, `g` (era, `A.D.`), `:` and `/`, `'…'` and `"…"` quoted
//! literals, `\x` escapes, and `%x` (a single custom specifier). Any other character is copied
//! literally (A18: the `Z` of `yyyyMMddHHmmss.fZ` is a literal). A format of exactly one character
//! is a .NET standard format (`d`, `D`, `f`, `F`, `g`, `G`, `m`, `M`, `o`, `O`, `r`, `R`, `s`, `t`,
//! `T`, `u`, `U`, `y`, `Y`); the culture-dependent ones use the en-US patterns, the culture the
//! service renders dates in (`G` = `M/d/yyyy h:mm:ss tt`, the default rendering). An empty format is
//! `G`.
//!
//! Where .NET throws a `FormatException` on a malformed format (more than seven `f`, an unterminated
//! quote, a lone `%` or `\`), we do not fail: extra `f`/`F` are capped at seven and the stray
//! character is taken literally. Parsing never uses the current date: fields the format does not
//! carry default to year 1, January, day 1, midnight (like .NET's `NoCurrentDateDefault`).

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};

pub(crate) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(crate) const MONTHS_ABBR: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/// Sunday first, as .NET's `DayOfWeek`.
pub(crate) const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
pub(crate) const DAYS_ABBR: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
/// .NET keeps 100 ns ticks: at most seven fraction digits.
const MAX_FRACTION_DIGITS: usize = 7;
/// The widest offset .NET accepts (±14:00).
const MAX_OFFSET_HOURS: i64 = 14;

/// One element of a parsed format string; the number is the specifier's repeat count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Literal(String),
    Year(usize),
    Month(usize),
    /// 1–2: day of month; 3: abbreviated day name; 4: full day name.
    Day(usize),
    Hour24(usize),
    Hour12(usize),
    Minute(usize),
    Second(usize),
    /// `f`: exactly n fraction digits.
    Fraction(usize),
    /// `F`: up to n fraction digits, trailing zeros dropped.
    FractionOpt(usize),
    AmPm(usize),
    Offset(usize),
    /// `K`: `Z` for UTC.
    Kind,
    Era,
}

/// Expands a one-character .NET standard format to its custom pattern (en-US culture patterns).
fn standard_pattern(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "M/d/yyyy",
        'D' => "dddd, MMMM d, yyyy",
        'f' => "dddd, MMMM d, yyyy h:mm tt",
        'F' | 'U' => "dddd, MMMM d, yyyy h:mm:ss tt",
        'g' => "M/d/yyyy h:mm tt",
        'G' => "M/d/yyyy h:mm:ss tt",
        'm' | 'M' => "MMMM d",
        'o' | 'O' => "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
        'r' | 'R' => "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
        's' => "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
        't' => "h:mm tt",
        'T' => "h:mm:ss tt",
        'u' => "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
        'y' | 'Y' => "MMMM yyyy",
        _ => return None,
    })
}

fn push_literal(tokens: &mut Vec<Token>, c: char) {
    if let Some(Token::Literal(s)) = tokens.last_mut() {
        s.push(c);
    } else {
        tokens.push(Token::Literal(c.to_string()));
    }
}

/// Splits a .NET date format string into tokens (see the module documentation).
pub(crate) fn tokenize(format: &str) -> Vec<Token> {
    let mut chars = format.chars();
    let single = match (chars.next(), chars.next()) {
        (None, _) => Some('G'),
        (Some(c), None) => Some(c),
        _ => None,
    };
    let expanded = single.and_then(standard_pattern).unwrap_or(format);
    let chars: Vec<char> = expanded.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '\'' | '"' => {
                i += 1;
                while let Some(&q) = chars.get(i) {
                    i += 1;
                    if q == c {
                        break;
                    }
                    if q == '\\' {
                        if let Some(&escaped) = chars.get(i) {
                            push_literal(&mut tokens, escaped);
                            i += 1;
                            continue;
                        }
                    }
                    push_literal(&mut tokens, q);
                }
            }
            '\\' => {
                match chars.get(i + 1) {
                    Some(&escaped) => push_literal(&mut tokens, escaped),
                    None => push_literal(&mut tokens, '\\'),
                }
                i += 2;
            }
            '%' => match chars.get(i + 1) {
                Some(&next) if next != '%' => {
                    // `%d` is the custom specifier `d` on its own.
                    let token = specifier(next, 1);
                    push_token(&mut tokens, token, next);
                    i += 2;
                }
                _ => {
                    push_literal(&mut tokens, '%');
                    i += 1;
                }
            },
            _ => {
                let mut count = 1;
                while chars.get(i + count) == Some(&c) && is_pattern_letter(c) {
                    count += 1;
                }
                push_token(&mut tokens, specifier(c, count), c);
                i += count;
            }
        }
    }
    tokens
}

fn is_pattern_letter(c: char) -> bool {
    matches!(c, 'y' | 'M' | 'd' | 'H' | 'h' | 'm' | 's' | 'f' | 'F' | 't' | 'z' | 'g')
}

fn push_token(tokens: &mut Vec<Token>, token: Option<Token>, c: char) {
    match token {
        Some(t) => tokens.push(t),
        None => push_literal(tokens, c),
    }
}

fn specifier(c: char, count: usize) -> Option<Token> {
    Some(match c {
        'y' => Token::Year(count),
        'M' => Token::Month(count.min(4)),
        'd' => Token::Day(count.min(4)),
        'H' => Token::Hour24(count.min(2)),
        'h' => Token::Hour12(count.min(2)),
        'm' => Token::Minute(count.min(2)),
        's' => Token::Second(count.min(2)),
        'f' => Token::Fraction(count.min(MAX_FRACTION_DIGITS)),
        'F' => Token::FractionOpt(count.min(MAX_FRACTION_DIGITS)),
        't' => Token::AmPm(count.min(2)),
        'z' => Token::Offset(count.min(3)),
        'g' => Token::Era,
        'K' => Token::Kind,
        ':' => Token::Literal(":".to_owned()),
        '/' => Token::Literal("/".to_owned()),
        _ => return None,
    })
}

fn pad(out: &mut String, value: i64, width: usize) {
    out.push_str(&format!("{value:0width$}"));
}

/// 100 ns ticks within the second (0–9,999,999; a chrono leap second counts as its last tick).
fn ticks_of(date: DateTime<Utc>) -> i64 {
    i64::from(date.nanosecond() / 100).min(9_999_999)
}

fn fraction_digits(date: DateTime<Utc>, n: usize) -> String {
    let n = n.clamp(1, MAX_FRACTION_DIGITS);
    let divisor = 10_i64.pow((MAX_FRACTION_DIGITS - n) as u32);
    format!("{:0n$}", ticks_of(date) / divisor)
}

/// Renders `date` with a .NET custom (or one-character standard) format string.
pub(crate) fn format(date: DateTime<Utc>, format: &str) -> String {
    let mut out = String::new();
    for token in tokenize(format) {
        match token {
            Token::Literal(s) => out.push_str(&s),
            Token::Year(n) => {
                let year = i64::from(date.year());
                if n <= 2 {
                    pad(&mut out, year.rem_euclid(100), n);
                } else {
                    pad(&mut out, year, n.min(64));
                }
            }
            Token::Month(n) => {
                let index = date.month0() as usize;
                match n {
                    1 | 2 => pad(&mut out, i64::from(date.month()), n),
                    3 => out.push_str(MONTHS_ABBR.get(index).copied().unwrap_or_default()),
                    _ => out.push_str(MONTHS.get(index).copied().unwrap_or_default()),
                }
            }
            Token::Day(n) => {
                let index = date.weekday().num_days_from_sunday() as usize;
                match n {
                    1 | 2 => pad(&mut out, i64::from(date.day()), n),
                    3 => out.push_str(DAYS_ABBR.get(index).copied().unwrap_or_default()),
                    _ => out.push_str(DAYS.get(index).copied().unwrap_or_default()),
                }
            }
            Token::Hour24(n) => pad(&mut out, i64::from(date.hour()), n),
            Token::Hour12(n) => {
                let h = date.hour() % 12;
                pad(&mut out, i64::from(if h == 0 { 12 } else { h }), n);
            }
            Token::Minute(n) => pad(&mut out, i64::from(date.minute()), n),
            Token::Second(n) => pad(&mut out, i64::from(date.second()), n),
            Token::Fraction(n) => out.push_str(&fraction_digits(date, n)),
            Token::FractionOpt(n) => {
                let digits = fraction_digits(date, n);
                let trimmed = digits.trim_end_matches('0');
                if trimmed.is_empty() {
                    // .NET drops the decimal point in front of an empty `F` fraction.
                    if out.ends_with('.') {
                        out.pop();
                    }
                } else {
                    out.push_str(trimmed);
                }
            }
            Token::AmPm(n) => {
                let pm = date.hour() >= 12;
                out.push_str(match (n, pm) {
                    (1, false) => "A",
                    (1, true) => "P",
                    (_, false) => "AM",
                    (_, true) => "PM",
                });
            }
            Token::Offset(n) => out.push_str(match n {
                1 => "+0",
                2 => "+00",
                _ => "+00:00",
            }),
            Token::Kind => out.push('Z'),
            Token::Era => out.push_str("A.D."),
        }
    }
    out
}

/// What a parse has read so far; `None` = not in the input.
#[derive(Default)]
struct Fields {
    year: Option<i64>,
    two_digit_year: bool,
    month: Option<i64>,
    day: Option<i64>,
    weekday: Option<i64>,
    hour: Option<i64>,
    minute: Option<i64>,
    second: Option<i64>,
    ticks: Option<i64>,
    pm: Option<bool>,
    offset_seconds: Option<i64>,
}

/// Sets a field; a field given twice must agree (as in .NET).
fn set<T: PartialEq + Copy>(field: &mut Option<T>, value: T) -> Option<()> {
    match *field {
        Some(existing) if existing != value => None,
        _ => {
            *field = Some(value);
            Some(())
        }
    }
}

pub(crate) struct Cursor<'a> {
    chars: &'a [char],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(chars: &'a [char]) -> Self {
        Cursor { chars, pos: 0 }
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn set_position(&mut self, pos: usize) {
        self.pos = pos.min(self.chars.len());
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    pub(crate) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Number of ASCII digits from the current position.
    pub(crate) fn digit_run(&self) -> usize {
        self.chars.get(self.pos..).unwrap_or_default().iter().take_while(|c| c.is_ascii_digit()).count()
    }

    /// Reads between `min` and `max` ASCII digits (greedy); None (position unchanged) if fewer.
    pub(crate) fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let n = self.digit_run().min(max);
        if n < min || n == 0 {
            return None;
        }
        let mut value: i64 = 0;
        for c in self.chars.get(self.pos..self.pos + n)? {
            let d = i64::from(c.to_digit(10)?);
            value = value.checked_mul(10)?.checked_add(d)?;
        }
        self.pos += n;
        Some(value)
    }

    /// Matches `word` case-insensitively (ASCII) and consumes it.
    pub(crate) fn eat_word_ci(&mut self, word: &str) -> bool {
        let len = word.chars().count();
        let Some(slice) = self.chars.get(self.pos..self.pos + len) else {
            return false;
        };
        if slice.iter().zip(word.chars()).all(|(a, b)| a.eq_ignore_ascii_case(&b)) {
            self.pos += len;
            true
        } else {
            false
        }
    }

    /// Matches the longest of `names` case-insensitively; returns its index.
    pub(crate) fn name(&mut self, names: &[&str]) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (index, name) in names.iter().enumerate() {
            let len = name.chars().count();
            let start = self.pos;
            if self.eat_word_ci(name) && best.is_none_or(|(_, l)| len > l) {
                best = Some((index, len));
            }
            self.pos = start;
        }
        let (index, len) = best?;
        self.pos += len;
        Some(index)
    }

    /// A UTC offset `±H`, `±HH`, `±HH:MM` or `±HHMM` (at most ±14:00); `exact_two` asks for two
    /// hour digits, `minutes` says whether a minutes part may or must follow. Returns seconds east
    /// of UTC; None (position unchanged) if there is no valid offset here.
    pub(crate) fn offset(&mut self, exact_two: bool, minutes: MinutesPart) -> Option<i64> {
        let start = self.pos;
        let result = self.offset_inner(exact_two, minutes);
        if result.is_none() {
            self.pos = start;
        }
        result
    }

    fn offset_inner(&mut self, exact_two: bool, minutes: MinutesPart) -> Option<i64> {
        let sign = if self.eat('+') {
            1
        } else if self.eat('-') || self.eat('\u{2212}') {
            -1
        } else {
            return None;
        };
        let hours = if exact_two { self.digits(2, 2)? } else { self.digits(1, 2)? };
        let mins = match minutes {
            MinutesPart::None => 0,
            MinutesPart::Required | MinutesPart::Optional => {
                let colon = self.eat(':');
                match self.digits(2, 2) {
                    Some(m) => m,
                    None if colon => return None,
                    None if minutes == MinutesPart::Required => return None,
                    None => 0,
                }
            }
        };
        if hours > MAX_OFFSET_HOURS || mins > 59 || (hours == MAX_OFFSET_HOURS && mins > 0) {
            return None;
        }
        Some(sign * (hours * 3600 + mins * 60))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MinutesPart {
    None,
    Required,
    Optional,
}

/// .NET's `ToFourDigitYear` with TwoDigitYearMax 2049: 00–49 are 2000–2049, 50–99 are 1950–1999.
pub(crate) fn four_digit_year(two_digit: i64) -> i64 {
    if two_digit <= 49 {
        2000 + two_digit
    } else {
        1900 + two_digit
    }
}

/// Applies an AM/PM designator to an hour as .NET does (AM: 0–12, 12 → 0; PM: 0–23, <12 → +12).
pub(crate) fn apply_am_pm(hour: i64, pm: Option<bool>) -> Option<i64> {
    match pm {
        None => Some(hour),
        Some(false) if (0..=12).contains(&hour) => Some(if hour == 12 { 0 } else { hour }),
        Some(true) if (0..=23).contains(&hour) => Some(if hour < 12 { hour + 12 } else { hour }),
        Some(_) => None,
    }
}

/// Builds a UTC instant from calendar fields and an offset (seconds east of UTC); None if a field is
/// out of range or the instant is outside .NET's years 1–9999.
pub(crate) fn build_utc(
    year: i64,
    month: i64,
    day: i64,
    hms: (i64, i64, i64),
    ticks: i64,
    offset_seconds: i64,
) -> Option<DateTime<Utc>> {
    let date =
        NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, u32::try_from(month).ok()?, u32::try_from(day).ok()?)?;
    let nanos = u32::try_from(ticks).ok()?.checked_mul(100)?;
    if nanos >= 1_000_000_000 {
        return None;
    }
    let time = NaiveTime::from_hms_nano_opt(
        u32::try_from(hms.0).ok()?,
        u32::try_from(hms.1).ok()?,
        u32::try_from(hms.2).ok()?,
        nanos,
    )?;
    let local = date.and_time(time);
    let utc = local.checked_sub_signed(TimeDelta::try_seconds(offset_seconds)?)?;
    if !(1..=9999).contains(&utc.year()) {
        return None;
    }
    Some(utc.and_utc())
}

/// Parses `text` with a .NET custom (or one-character standard) format string, like .NET's
/// `DateTime.ParseExact` with `RoundtripKind | AllowLeadingWhite | AllowTrailingWhite` and the
/// invariant culture. Without an offset in the text the value is taken as UTC; with one (`zzz`, `K`)
/// it is converted to UTC. None when the text does not match.
pub(crate) fn parse(text: &str, format: &str) -> Option<DateTime<Utc>> {
    let chars: Vec<char> = text.trim().chars().collect();
    let tokens = tokenize(format);
    let mut cur = Cursor::new(&chars);
    let mut f = Fields::default();
    let mut index = 0;
    while let Some(token) = tokens.get(index) {
        index += 1;
        match token {
            Token::Literal(s) => {
                let start = cur.pos;
                if !match_literal(&mut cur, s) {
                    // A `.` before an `F` fraction is optional, with the fraction.
                    cur.pos = start;
                    let next_is_opt = matches!(tokens.get(index), Some(Token::FractionOpt(_)));
                    let stem = s.strip_suffix('.')?;
                    if !next_is_opt || !match_literal(&mut cur, stem) {
                        return None;
                    }
                    index += 1;
                }
            }
            Token::Year(n) => {
                let n = *n;
                let y = if n == 1 { cur.digits(1, 2)? } else { cur.digits(n, n)? };
                set(&mut f.year, y)?;
                f.two_digit_year = n <= 2;
            }
            Token::Month(n) => {
                let m = match n {
                    1 => cur.digits(1, 2)?,
                    2 => cur.digits(2, 2)?,
                    3 => index_to_number(cur.name(&MONTHS_ABBR)?),
                    _ => index_to_number(cur.name(&MONTHS)?),
                };
                set(&mut f.month, m)?;
            }
            Token::Day(n) => match n {
                1 => set(&mut f.day, cur.digits(1, 2)?)?,
                2 => set(&mut f.day, cur.digits(2, 2)?)?,
                3 => set(&mut f.weekday, cur.name(&DAYS_ABBR)? as i64)?,
                _ => set(&mut f.weekday, cur.name(&DAYS)? as i64)?,
            },
            Token::Hour24(n) | Token::Hour12(n) => set(&mut f.hour, two_digits(&mut cur, *n)?)?,
            Token::Minute(n) => set(&mut f.minute, two_digits(&mut cur, *n)?)?,
            Token::Second(n) => set(&mut f.second, two_digits(&mut cur, *n)?)?,
            Token::Fraction(n) => {
                let n = (*n).clamp(1, MAX_FRACTION_DIGITS);
                let value = cur.digits(n, n)?;
                set(&mut f.ticks, value * 10_i64.pow((MAX_FRACTION_DIGITS - n) as u32))?;
            }
            Token::FractionOpt(n) => {
                let n = (*n).clamp(1, MAX_FRACTION_DIGITS);
                let run = cur.digit_run().min(n);
                if run > 0 {
                    let value = cur.digits(run, run)?;
                    set(&mut f.ticks, value * 10_i64.pow((MAX_FRACTION_DIGITS - run) as u32))?;
                }
            }
            Token::AmPm(n) => {
                let pm = if *n == 1 {
                    if cur.eat_word_ci("A") {
                        false
                    } else if cur.eat_word_ci("P") {
                        true
                    } else {
                        return None;
                    }
                } else if cur.eat_word_ci("AM") {
                    false
                } else if cur.eat_word_ci("PM") {
                    true
                } else {
                    return None;
                };
                set(&mut f.pm, pm)?;
            }
            Token::Offset(n) => {
                let offset = match n {
                    1 => cur.offset(false, MinutesPart::None)?,
                    2 => cur.offset(true, MinutesPart::None)?,
                    _ => cur.offset(false, MinutesPart::Required)?,
                };
                set(&mut f.offset_seconds, offset)?;
            }
            Token::Kind => {
                if cur.eat('Z') || cur.eat('z') {
                    set(&mut f.offset_seconds, 0)?;
                } else if matches!(cur.peek(), Some('+' | '-')) {
                    set(&mut f.offset_seconds, cur.offset(false, MinutesPart::Required)?)?;
                }
            }
            Token::Era => {
                if !(cur.eat_word_ci("A.D.") || cur.eat_word_ci("AD")) {
                    return None;
                }
            }
        }
    }
    if !cur.at_end() {
        return None;
    }
    let mut year = f.year.unwrap_or(1);
    if f.two_digit_year && f.year.is_some() {
        year = four_digit_year(year);
    }
    let hour = apply_am_pm(f.hour.unwrap_or(0), f.pm)?;
    let utc = build_utc(
        year,
        f.month.unwrap_or(1),
        f.day.unwrap_or(1),
        (hour, f.minute.unwrap_or(0), f.second.unwrap_or(0)),
        f.ticks.unwrap_or(0),
        f.offset_seconds.unwrap_or(0),
    )?;
    if let Some(weekday) = f.weekday {
        // The day name must agree with the date (local to the parsed offset).
        let local = utc.checked_add_signed(TimeDelta::try_seconds(f.offset_seconds.unwrap_or(0))?)?;
        if i64::from(local.weekday().num_days_from_sunday()) != weekday {
            return None;
        }
    }
    Some(utc)
}

fn index_to_number(index: usize) -> i64 {
    index as i64 + 1
}

/// `h`, `m`, `s`… : one letter reads one or two digits, two letters exactly two.
fn two_digits(cur: &mut Cursor<'_>, n: usize) -> Option<i64> {
    if n <= 1 {
        cur.digits(1, 2)
    } else {
        cur.digits(2, 2)
    }
}

/// Literal text: exact characters, except that a space in the format may match the end of the
/// (trimmed) input, as .NET allows with `AllowTrailingWhite`.
fn match_literal(cur: &mut Cursor<'_>, literal: &str) -> bool {
    for c in literal.chars() {
        if cur.eat(c) {
            continue;
        }
        if c.is_whitespace() && cur.at_end() {
            continue;
        }
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn tokenizes_specifiers_quotes_escapes_and_literals() {
        use Token::*;
        assert_eq!(
            tokenize("yyyy-MM-dd'T'HH\\:mm zzz"),
            vec![
                Year(4),
                Literal("-".into()),
                Month(2),
                Literal("-".into()),
                Day(2),
                Literal("T".into()),
                Hour24(2),
                Literal(":".into()),
                Minute(2),
                Literal(" ".into()),
                Offset(3),
            ]
        );
        // A18: the Z of yyyyMMddHHmmss.fZ is a literal.
        assert_eq!(
            tokenize("yyyyMMddHHmmss.fZ"),
            vec![
                Year(4),
                Month(2),
                Day(2),
                Hour24(2),
                Minute(2),
                Second(2),
                Literal(".".into()),
                Fraction(1),
                Literal("Z".into()),
            ]
        );
        assert_eq!(tokenize("%d"), vec![Day(1)]);
        assert_eq!(tokenize("\"a\\\"b\""), vec![Literal("a\"b".into())]);
        assert_eq!(tokenize("ffffffffff"), vec![Fraction(7)]);
    }

    #[test]
    fn formats_every_specifier() {
        let d = utc(2021, 7, 2, 15, 3, 8) + TimeDelta::nanoseconds(123_456_700);
        assert_eq!(format(d, "M/d/yyyy h:mm:ss tt"), "7/2/2021 3:03:08 PM");
        assert_eq!(format(d, "MM/dd/yy hh:m:s t"), "07/02/21 03:3:8 P");
        assert_eq!(format(d, "y yyy yyyyy"), "21 2021 02021");
        assert_eq!(format(d, "MMM MMMM ddd dddd"), "Jul July Fri Friday");
        assert_eq!(format(d, "HH H"), "15 15");
        assert_eq!(format(d, "f ff fffffff"), "1 12 1234567");
        assert_eq!(format(d, "F FFFF FFFFFFF"), "1 1234 1234567");
        assert_eq!(format(d, "z zz zzz K g"), "+0 +00 +00:00 Z A.D.");
        assert_eq!(format(d, "'yyyy' \"MM\" \\d"), "yyyy MM d");
        assert_eq!(format(d, "yyyyMMddHHmmss.fZ"), "20210702150308.1Z");
    }

    #[test]
    fn format_f_drops_the_point_when_the_fraction_is_zero() {
        let d = utc(2021, 7, 2, 0, 0, 0);
        assert_eq!(format(d, "HH:mm:ss.FFF"), "00:00:00");
        assert_eq!(format(d, "HH:mm:ss.fff"), "00:00:00.000");
    }

    #[test]
    fn midnight_and_noon_in_twelve_hour_clock() {
        assert_eq!(format(utc(2021, 1, 1, 0, 5, 0), "h:mm tt"), "12:05 AM");
        assert_eq!(format(utc(2021, 1, 1, 12, 5, 0), "h:mm tt"), "12:05 PM");
    }

    #[test]
    fn standard_formats_and_empty_format() {
        let d = utc(2021, 7, 2, 15, 33, 38);
        assert_eq!(format(d, ""), "7/2/2021 3:33:38 PM");
        assert_eq!(format(d, "G"), "7/2/2021 3:33:38 PM");
        assert_eq!(format(d, "d"), "7/2/2021");
        assert_eq!(format(d, "o"), "2021-07-02T15:33:38.0000000Z");
        assert_eq!(format(d, "s"), "2021-07-02T15:33:38");
        assert_eq!(format(d, "u"), "2021-07-02 15:33:38Z");
        assert_eq!(format(d, "R"), "Fri, 02 Jul 2021 15:33:38 GMT");
        assert_eq!(format(d, "D"), "Friday, July 2, 2021");
        // Not a standard format: a single literal.
        assert_eq!(format(d, "Z"), "Z");
    }

    #[test]
    fn parses_what_it_formats() {
        let d = utc(2021, 7, 2, 15, 3, 8) + TimeDelta::nanoseconds(123_456_700);
        for f in [
            "yyyy-MM-ddTHH:mm:ss.fffffffK",
            "o",
            "dddd, MMMM d, yyyy h:mm:ss.FFFFFFF tt",
            "yyyyMMddHHmmss.fffffffZ",
            "ddd dd MMM yyyy HH'h'mm's's.fffffff zzz",
        ] {
            assert_eq!(parse(&format(d, f), f), Some(d), "format {f}");
        }
    }

    #[test]
    fn parses_with_offsets_to_utc() {
        assert_eq!(parse("2025-12-31-08:00", "yyyy-MM-ddzzz"), Some(utc(2025, 12, 31, 8, 0, 0)));
        assert_eq!(parse("2025-12-31+0530", "yyyy-MM-ddzzz"), Some(utc(2025, 12, 30, 18, 30, 0)));
        assert_eq!(parse("2025-12-31 10 +3", "yyyy-MM-dd HH z"), Some(utc(2025, 12, 31, 7, 0, 0)));
        assert_eq!(parse("2025-12-31 10 +3", "yyyy-MM-dd HH zz"), None);
        assert_eq!(parse("2025-12-31T10:00:00Z", "yyyy-MM-ddTHH:mm:ssK"), Some(utc(2025, 12, 31, 10, 0, 0)));
        assert_eq!(parse("2025-12-31T10:00:00", "yyyy-MM-ddTHH:mm:ssK"), Some(utc(2025, 12, 31, 10, 0, 0)));
        assert_eq!(parse("2025-12-31+15:00", "yyyy-MM-ddzzz"), None);
    }

    #[test]
    fn parse_is_strict_about_digit_counts_and_values() {
        assert_eq!(parse("12/31/2025 12:00:00 AM", "M/d/yyyy hh:mm:ss tt"), Some(utc(2025, 12, 31, 0, 0, 0)));
        assert_eq!(parse("8/5/2025 1:00:00 PM", "M/d/yyyy h:mm:ss tt"), Some(utc(2025, 8, 5, 13, 0, 0)));
        // hh wants two digits
        assert_eq!(parse("8/5/2025 1:00:00 PM", "M/d/yyyy hh:mm:ss tt"), None);
        assert_eq!(parse("2025-8-05", "yyyy-MM-dd"), None);
        assert_eq!(parse("2025-02-29", "yyyy-MM-dd"), None);
        assert_eq!(parse("2024-02-29", "yyyy-MM-dd"), Some(utc(2024, 2, 29, 0, 0, 0)));
        assert_eq!(parse("13:00 AM", "HH:mm tt"), None);
        assert_eq!(parse("25:00", "HH:mm"), None);
        assert_eq!(parse("2025-01-01 trailing", "yyyy-MM-dd"), None);
        assert_eq!(parse("  2025-01-01  ", "yyyy-MM-dd"), Some(utc(2025, 1, 1, 0, 0, 0)));
        assert_eq!(parse("", "yyyy-MM-dd"), None);
    }

    #[test]
    fn parse_names_case_insensitively_and_checks_the_day_name() {
        assert_eq!(parse("friday, JULY 2, 2021", "dddd, MMMM d, yyyy"), Some(utc(2021, 7, 2, 0, 0, 0)));
        assert_eq!(parse("Monday, July 2, 2021", "dddd, MMMM d, yyyy"), None);
        assert_eq!(parse("02 sep 2021", "dd MMM yyyy"), Some(utc(2021, 9, 2, 0, 0, 0)));
    }

    #[test]
    fn parse_two_digit_years_pivot_at_2049() {
        assert_eq!(parse("01/02/49", "MM/dd/yy"), Some(utc(2049, 1, 2, 0, 0, 0)));
        assert_eq!(parse("01/02/50", "MM/dd/yy"), Some(utc(1950, 1, 2, 0, 0, 0)));
        assert_eq!(parse("1/2/5", "M/d/y"), Some(utc(2005, 1, 2, 0, 0, 0)));
    }

    #[test]
    fn parse_optional_fraction_and_its_point() {
        assert_eq!(parse("10:00:00", "HH:mm:ss.FFF"), Some(utc(1, 1, 1, 10, 0, 0)));
        assert_eq!(parse("10:00:00.5", "HH:mm:ss.FFF"), Some(utc(1, 1, 1, 10, 0, 0) + TimeDelta::milliseconds(500)));
        assert_eq!(parse("10:00:00.5", "HH:mm:ss.ff"), None);
        assert_eq!(parse("20210824153045.0Z", "yyyyMMddHHmmss.fZ"), Some(utc(2021, 8, 24, 15, 30, 45)));
    }

    #[test]
    fn parse_defaults_missing_fields_without_the_current_date() {
        assert_eq!(parse("2021", "yyyy"), Some(utc(2021, 1, 1, 0, 0, 0)));
        assert_eq!(parse("3 PM", "h tt"), Some(utc(1, 1, 1, 15, 0, 0)));
        // A field given twice must agree.
        assert_eq!(parse("2021 2021", "yyyy yyyy"), Some(utc(2021, 1, 1, 0, 0, 0)));
        assert_eq!(parse("2021 2022", "yyyy yyyy"), None);
    }

    #[test]
    fn never_panics_on_odd_formats_and_inputs() {
        let formats = [
            "",
            "%",
            "%%",
            "\\",
            "'",
            "\"",
            "'unterminated",
            "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
            "ffffffffffffffffff",
            "FFFFFFFFFFFFFFF",
            "MMMMMMMM dddddddd hhhh HHHH mmmm ssss tttt zzzzzz KK gg",
            ".F",
            ".FFF.",
            "é€😀",
            "yyyy-MM-ddzzz",
            "M/d/yyyy h:mm:ss tt",
            "\u{0}",
        ];
        let inputs = [
            "",
            " ",
            "9999999999999999999999999999999999999999999",
            "0000-00-00",
            "9999-12-31+14:00",
            "0001-01-01-14:00",
            "+",
            "-99:99",
            "😀",
            "é",
            "12/31/9999 11:59:59 PM",
            "2021-07-02T15:03:08.1234567Z",
        ];
        let dates =
            [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, utc(1, 1, 1, 0, 0, 0), utc(9999, 12, 31, 23, 59, 59)];
        for f in formats {
            for d in dates {
                let _ = format(d, f);
            }
            for i in inputs {
                let _ = parse(i, f);
                let _ = parse(i, i);
            }
        }
        assert_eq!(parse("9999-12-31+14:00", "yyyy-MM-ddzzz"), Some(utc(9999, 12, 30, 10, 0, 0)));
        assert_eq!(parse("0001-01-01+01:00", "yyyy-MM-ddzzz"), None);
        assert_eq!(parse("0000-01-01", "yyyy-MM-dd"), None);
    }
}
