//! Pure text functions: NormalizeDiacritics, PCase, culture-aware case mapping, RandomString,
//! StringFromSid, DNComponent, Word.

use rand::seq::SliceRandom;
use rand::Rng;
use unicode_normalization::UnicodeNormalization;

/// NormalizeDiacritics (reference §3, §8): the explicit table first (letters that do not decompose),
/// then canonical decomposition with the combining diacritical marks removed, recomposed (so scripts
/// whose characters decompose for other reasons, such as Hangul, come back unchanged). Characters
/// in neither are kept (`œ`, `đ`).
pub(crate) fn normalize_diacritics(source: &str) -> String {
    let mut mapped = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            'æ' | 'ǣ' => mapped.push_str("ae"),
            'Æ' | 'Ǣ' => mapped.push_str("AE"),
            'ø' | 'ǿ' => mapped.push_str("oe"),
            'Ø' | 'Ǿ' => mapped.push_str("OE"),
            'ß' => mapped.push_str("ss"),
            'ẞ' => mapped.push_str("SS"),
            'ł' => mapped.push('l'),
            'Ł' => mapped.push('L'),
            'ı' => mapped.push('i'),
            // œ̄ / Œ̄ (with a combining macron) are in the table; plain œ / Œ are not.
            'œ' if chars.peek() == Some(&'\u{0304}') => {
                chars.next();
                mapped.push_str("oe");
            }
            'Œ' if chars.peek() == Some(&'\u{0304}') => {
                chars.next();
                mapped.push_str("OE");
            }
            other => mapped.push(other),
        }
    }
    if mapped.is_ascii() {
        return mapped;
    }
    mapped.nfd().filter(|c| !is_diacritical_mark(*c)).nfc().collect()
}

fn is_diacritical_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// .NET `TextInfo.IsWordSeparator`, approximated without the Unicode category tables: white space,
/// controls, punctuation and symbols separate words; letters, digits, marks and the apostrophe do not.
fn is_word_separator(c: char) -> bool {
    if c == '\'' || c == '\u{2019}' {
        return false;
    }
    if c.is_whitespace() || c.is_control() {
        return true;
    }
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    !(c.is_alphanumeric() || is_diacritical_mark(c))
}

/// PCase: without separators, .NET `ToTitleCase(ToLower(s))` (A25): the first letter of each word upper
/// case, the rest lower case; with `separators`, only those characters separate words.
pub(crate) fn pcase(source: &str, separators: Option<&str>) -> String {
    let lower = source.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut at_word_start = true;
    match separators {
        None => {
            for c in lower.chars() {
                if is_word_separator(c) {
                    at_word_start = true;
                    out.push(c);
                } else if c.is_alphabetic() && at_word_start {
                    out.extend(c.to_uppercase());
                    at_word_start = false;
                } else {
                    if c.is_alphabetic() {
                        at_word_start = false;
                    }
                    out.push(c);
                }
            }
        }
        Some(separators) => {
            for c in lower.chars() {
                if separators.contains(c) {
                    at_word_start = true;
                    out.push(c);
                } else if at_word_start {
                    out.extend(c.to_uppercase());
                    at_word_start = false;
                } else {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// True for the cultures whose dotted and dotless i differ from the invariant mapping (tr, az).
fn is_turkic(culture: Option<&str>) -> bool {
    culture.is_some_and(|c| {
        let lang = c.split(['-', '_']).next().unwrap_or("");
        lang.eq_ignore_ascii_case("tr") || lang.eq_ignore_ascii_case("az")
    })
}

pub(crate) fn to_lower(source: &str, culture: Option<&str>) -> String {
    if is_turkic(culture) {
        source
            .chars()
            .flat_map(|c| match c {
                'I' => vec!['ı'],
                'İ' => vec!['i'],
                other => other.to_lowercase().collect(),
            })
            .collect()
    } else {
        source.to_lowercase()
    }
}

pub(crate) fn to_upper(source: &str, culture: Option<&str>) -> String {
    if is_turkic(culture) {
        source
            .chars()
            .flat_map(|c| match c {
                'i' => vec!['İ'],
                'ı' => vec!['I'],
                other => other.to_uppercase().collect(),
            })
            .collect()
    } else {
        source.to_uppercase()
    }
}

/// The "special characters" of the Windows password complexity rule.
const SPECIALS: &str = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/";
const DIGITS: &str = "0123456789";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";

/// RandomString: `length` characters with at least the given numbers of digits, special characters,
/// capitals and lower-case letters, none of them in `avoid`.
pub(crate) fn random_string(
    length: i64,
    digits: i64,
    specials: i64,
    capitals: i64,
    lowers: i64,
    avoid: &str,
) -> Result<String, String> {
    if !(1..=256).contains(&length) {
        return Err(format!("length must be between 1 and 256, found {length}"));
    }
    let minimums = [digits, specials, capitals, lowers];
    if minimums.iter().any(|m| *m < 0) {
        return Err("the minimum counts cannot be negative".to_owned());
    }
    let sum = minimums.iter().fold(0i64, |total, m| total.saturating_add(*m));
    if sum > length {
        return Err(format!("length {length} is less than the sum of the minimums ({sum})"));
    }
    let class = |set: &str| -> Vec<char> { set.chars().filter(|c| !avoid.contains(*c)).collect() };
    let classes = [class(DIGITS), class(SPECIALS), class(UPPER), class(LOWER)];
    let names = ["digits", "special characters", "capitals", "lower-case letters"];
    let mut rng = rand::rng();
    let mut out: Vec<char> = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
    for ((set, minimum), name) in classes.iter().zip(minimums).zip(names) {
        if minimum > 0 && set.is_empty() {
            return Err(format!("charactersToAvoid leaves no {name}"));
        }
        for _ in 0..minimum {
            out.push(set[rng.random_range(0..set.len())]);
        }
    }
    let all: Vec<char> = classes.concat();
    if all.is_empty() {
        return Err("charactersToAvoid leaves no characters to choose from".to_owned());
    }
    while i64::try_from(out.len()).unwrap_or(i64::MAX) < length {
        out.push(all[rng.random_range(0..all.len())]);
    }
    out.shuffle(&mut rng);
    Ok(out.into_iter().collect())
}

/// StringFromSid: a binary SID (revision, sub-authority count, 48-bit authority, 32-bit
/// little-endian sub-authorities) as `S-1-5-21-…`.
pub(crate) fn sid_to_string(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() < 8 {
        return Err(format!("a SID has at least 8 bytes, found {}", bytes.len()));
    }
    let revision = bytes[0];
    let count = usize::from(bytes[1]);
    if bytes.len() != 8 + 4 * count {
        return Err(format!("a SID with {count} sub-authorities has {} bytes, found {}", 8 + 4 * count, bytes.len()));
    }
    let authority = bytes[2..8].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut out = format!("S-{revision}-{authority}");
    for chunk in bytes[8..].chunks_exact(4) {
        let sub = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        out.push_str(&format!("-{sub}"));
    }
    Ok(out)
}

/// DNComponent: the value of the `n`-th RDN (1-based, from the left) of a distinguished name.
pub(crate) fn dn_component(dn: &str, n: i64) -> Option<String> {
    if n < 1 {
        return None;
    }
    let mut rdns = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' {
            rdns.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    rdns.push(current);
    let rdn = rdns.get(usize::try_from(n - 1).ok()?)?;
    let value = rdn.split_once('=').map_or(rdn.as_str(), |(_, v)| v);
    Some(value.trim().to_owned())
}

/// Word: the `n`-th word (1-based) of `s`, words separated by any of the characters in `delimiters`;
/// consecutive delimiters make no empty words (A21).
pub(crate) fn word(s: &str, n: i64, delimiters: &str) -> String {
    if n < 1 {
        return String::new();
    }
    let index = usize::try_from(n - 1).unwrap_or(usize::MAX);
    s.split(|c| delimiters.contains(c)).filter(|w| !w.is_empty()).nth(index).unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diacritics_table_and_decomposition() {
        assert_eq!(normalize_diacritics("Æsa Øst Straße Łódź"), "AEsa OEst Strasse Lodz");
        assert_eq!(normalize_diacritics("José García-López"), "Jose Garcia-Lopez");
        assert_eq!(normalize_diacritics("ǣ ı ø̄ œ̄ Œ̄ œ đ"), "ae i oe oe OE œ đ");
        assert_eq!(normalize_diacritics("çčć äåà ñ Ÿ"), "ccc aaa n Y");
        assert_eq!(normalize_diacritics("한국어 日本"), "한국어 日本");
        assert_eq!(normalize_diacritics("plain"), "plain");
    }

    #[test]
    fn pcase_is_title_case_of_lower_case() {
        assert_eq!(pcase("PABLO GONSALVES (SECOND)", None), "Pablo Gonsalves (Second)");
        assert_eq!(pcase("st john's hospital", None), "St John's Hospital");
        assert_eq!(pcase("mary-ann o'neil", None), "Mary-Ann O'neil");
        assert_eq!(pcase("2nd floor", None), "2Nd Floor");
        assert_eq!(pcase("john_smith-jones", Some("_")), "John_Smith-jones");
        assert_eq!(pcase("", None), "");
    }

    #[test]
    fn turkish_case() {
        assert_eq!(to_upper("istanbul", Some("tr-TR")), "İSTANBUL");
        assert_eq!(to_lower("ISTANBUL", Some("tr")), "ıstanbul");
        assert_eq!(to_upper("istanbul", Some("en-US")), "ISTANBUL");
        assert_eq!(to_lower("ÀB", None), "àb");
    }

    #[test]
    fn random_string_rules() {
        for _ in 0..50 {
            let s = random_string(10, 2, 2, 2, 1, "?,").unwrap();
            assert_eq!(s.chars().count(), 10);
            assert!(s.chars().filter(char::is_ascii_digit).count() >= 2);
            assert!(s.chars().filter(|c| SPECIALS.contains(*c)).count() >= 2);
            assert!(s.chars().filter(char::is_ascii_uppercase).count() >= 2);
            assert!(s.chars().filter(char::is_ascii_lowercase).count() >= 1);
            assert!(!s.contains('?') && !s.contains(','));
        }
        assert!(random_string(3, 2, 2, 0, 0, "").is_err());
        assert!(random_string(257, 0, 0, 0, 0, "").is_err());
        assert!(random_string(2, 1, 0, 0, 0, DIGITS).is_err());
        assert!(random_string(10, i64::MAX, i64::MAX, 0, 0, "").is_err());
    }

    #[test]
    fn sids() {
        let bytes = [1u8, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 32, 2, 0, 0];
        assert_eq!(sid_to_string(&bytes).unwrap(), "S-1-5-32-544");
        assert!(sid_to_string(&bytes[..10]).is_err());
    }

    #[test]
    fn dn_components() {
        assert_eq!(dn_component("cn=Joe,ou=Users,dc=contoso,dc=com", 1).as_deref(), Some("Joe"));
        assert_eq!(dn_component("cn=Smith\\, Joe,ou=Users", 2).as_deref(), Some("Users"));
        assert_eq!(dn_component("cn=Smith\\, Joe,ou=Users", 1).as_deref(), Some("Smith\\, Joe"));
        assert_eq!(dn_component("cn=Joe", 2), None);
        assert_eq!(dn_component("cn=Joe", 0), None);
    }

    #[test]
    fn words() {
        assert_eq!(word("The quick brown fox", 3, " "), "brown");
        assert_eq!(word("This,string!has&many separators", 3, ",!&#"), "has");
        assert_eq!(word("a,,b", 2, ","), "b");
        assert_eq!(word("a b", 3, " "), "");
        assert_eq!(word("a b", 0, " "), "");
    }
}
