//! The function table: every function of reference §3, resolved case-insensitively at parse time (A1).

/// A function of the language. Parsing resolves names into this enum, so evaluation never compares names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Append,
    AppRoleAssignments,
    AppRoleAssignmentsComplex,
    AssertiveAppRoleAssignmentsComplex,
    BitAnd,
    BitOr,
    CBool,
    CDate,
    Coalesce,
    Contains,
    ConvertFromBase64,
    ConvertToBase64,
    ConvertToUtf8Hex,
    Count,
    CRef,
    CStr,
    DateAdd,
    DateDiff,
    DateFromNum,
    DefaultDomain,
    DnComponent,
    Error,
    FormatDateTime,
    Guid,
    IgnoreFlowIfNullOrEmpty,
    Iif,
    InStr,
    IsNull,
    IsNullOrEmpty,
    IsPresent,
    IsString,
    Item,
    Join,
    Left,
    Len,
    Mid,
    NormalizeDiacritics,
    Not,
    Now,
    NumFromDate,
    PCase,
    RandomString,
    Redact,
    RemoveDuplicates,
    Replace,
    Right,
    SelectUniqueValue,
    SingleAppRoleAssignment,
    Split,
    StringFromSid,
    StripSpaces,
    Switch,
    ToLower,
    ToUpper,
    Trim,
    Word,
}

/// How a function is called: its documented name, argument counts and signature (for messages).
pub(crate) struct FuncInfo {
    pub func: Func,
    pub name: &'static str,
    pub min: usize,
    /// `None`: any number of arguments from `min` on.
    pub max: Option<usize>,
    pub signature: &'static str,
}

const fn f(func: Func, name: &'static str, min: usize, max: Option<usize>, signature: &'static str) -> FuncInfo {
    FuncInfo { func, name, min, max, signature }
}

/// Every function, in alphabetical order of its documented name.
pub(crate) static FUNCTIONS: &[FuncInfo] = &[
    f(Func::Append, "Append", 2, Some(2), "Append(source, suffix)"),
    f(Func::AppRoleAssignments, "AppRoleAssignments", 1, Some(1), "AppRoleAssignments([appRoleAssignments])"),
    f(
        Func::AppRoleAssignmentsComplex,
        "AppRoleAssignmentsComplex",
        1,
        Some(1),
        "AppRoleAssignmentsComplex([appRoleAssignments])",
    ),
    f(
        Func::AssertiveAppRoleAssignmentsComplex,
        "AssertiveAppRoleAssignmentsComplex",
        1,
        Some(1),
        "AssertiveAppRoleAssignmentsComplex([appRoleAssignments])",
    ),
    f(Func::BitAnd, "BitAnd", 2, Some(2), "BitAnd(value1, value2)"),
    f(Func::BitOr, "BitOr", 2, Some(2), "BitOr(value1, value2)"),
    f(Func::CBool, "CBool", 1, Some(1), "CBool(expression)"),
    f(Func::CDate, "CDate", 1, Some(1), "CDate(expression)"),
    f(Func::Coalesce, "Coalesce", 1, None, "Coalesce(source1, …, sourceN, defaultValue opt)"),
    f(Func::Contains, "Contains", 2, Some(3), "Contains([multiValuedAttribute], value, compareType opt)"),
    f(Func::ConvertFromBase64, "ConvertFromBase64", 1, Some(2), "ConvertFromBase64(source, encoding opt)"),
    f(Func::ConvertToBase64, "ConvertToBase64", 1, Some(1), "ConvertToBase64(source)"),
    f(Func::ConvertToUtf8Hex, "ConvertToUTF8Hex", 1, Some(1), "ConvertToUTF8Hex(source)"),
    f(Func::Count, "Count", 1, Some(1), "Count(attribute)"),
    f(Func::CRef, "CRef", 1, Some(1), "CRef([dn])"),
    f(Func::CStr, "CStr", 1, Some(1), "CStr(value)"),
    f(Func::DateAdd, "DateAdd", 3, Some(3), "DateAdd(interval, value, dateTime)"),
    f(Func::DateDiff, "DateDiff", 3, Some(3), "DateDiff(interval, date1, date2)"),
    f(Func::DateFromNum, "DateFromNum", 1, Some(1), "DateFromNum(value)"),
    f(Func::DefaultDomain, "DefaultDomain", 0, Some(0), "DefaultDomain()"),
    f(Func::DnComponent, "DNComponent", 2, Some(2), "DNComponent(dn, componentNumber)"),
    f(Func::Error, "Error", 1, Some(1), "Error(message)"),
    f(
        Func::FormatDateTime,
        "FormatDateTime",
        3,
        Some(4),
        "FormatDateTime(source, dateTimeStyles opt, inputFormat, outputFormat) or FormatDateTime(source, inputFormat, outputFormat)",
    ),
    f(Func::Guid, "Guid", 0, Some(0), "Guid()"),
    f(Func::IgnoreFlowIfNullOrEmpty, "IgnoreFlowIfNullOrEmpty", 1, Some(1), "IgnoreFlowIfNullOrEmpty(expression)"),
    f(Func::Iif, "IIF", 3, Some(3), "IIF(condition, valueIfTrue, valueIfFalse)"),
    f(Func::InStr, "InStr", 2, Some(4), "InStr(value1, value2, start opt, compareType opt)"),
    f(Func::IsNull, "IsNull", 1, Some(1), "IsNull(expression)"),
    f(Func::IsNullOrEmpty, "IsNullOrEmpty", 1, Some(1), "IsNullOrEmpty(expression)"),
    f(Func::IsPresent, "IsPresent", 1, Some(1), "IsPresent(expression)"),
    f(Func::IsString, "IsString", 1, Some(1), "IsString(expression)"),
    f(Func::Item, "Item", 2, Some(2), "Item(attribute, index)"),
    f(Func::Join, "Join", 2, None, "Join(separator, source1, source2, …)"),
    f(Func::Left, "Left", 2, Some(2), "Left(string, numChars)"),
    f(Func::Len, "Len", 1, Some(1), "Len(string)"),
    f(Func::Mid, "Mid", 2, Some(3), "Mid(source, start, length)"),
    f(Func::NormalizeDiacritics, "NormalizeDiacritics", 1, Some(1), "NormalizeDiacritics(source)"),
    f(Func::Not, "Not", 1, Some(1), "Not(source)"),
    f(Func::Now, "Now", 0, Some(0), "Now()"),
    f(Func::NumFromDate, "NumFromDate", 1, Some(1), "NumFromDate(value)"),
    f(Func::PCase, "PCase", 1, Some(2), "PCase(source, wordSeparators opt)"),
    f(
        Func::RandomString,
        "RandomString",
        5,
        Some(6),
        "RandomString(length, minimumNumbers, minimumSpecialCharacters, minimumCapital, minimumLowerCase, charactersToAvoid opt)",
    ),
    f(Func::Redact, "Redact", 1, Some(1), "Redact(value)"),
    f(Func::RemoveDuplicates, "RemoveDuplicates", 1, Some(1), "RemoveDuplicates(attribute)"),
    f(
        Func::Replace,
        "Replace",
        3,
        Some(7),
        "Replace(source, oldValue, regexPattern, regexGroupName, replacementValue, replacementAttributeName, template)",
    ),
    f(Func::Right, "Right", 2, Some(2), "Right(string, numChars)"),
    f(Func::SelectUniqueValue, "SelectUniqueValue", 2, None, "SelectUniqueValue(rule1, rule2, …)"),
    f(
        Func::SingleAppRoleAssignment,
        "SingleAppRoleAssignment",
        1,
        Some(1),
        "SingleAppRoleAssignment([appRoleAssignments])",
    ),
    f(Func::Split, "Split", 2, Some(2), "Split(source, delimiter)"),
    f(Func::StringFromSid, "StringFromSid", 1, Some(1), "StringFromSid(binarySid)"),
    f(Func::StripSpaces, "StripSpaces", 1, Some(1), "StripSpaces(source)"),
    f(Func::Switch, "Switch", 2, None, "Switch(source, defaultValue, key1, value1, key2, value2, …)"),
    f(Func::ToLower, "ToLower", 1, Some(2), "ToLower(source, culture opt)"),
    f(Func::ToUpper, "ToUpper", 1, Some(2), "ToUpper(source, culture opt)"),
    f(Func::Trim, "Trim", 1, Some(1), "Trim(value)"),
    f(Func::Word, "Word", 3, Some(3), "Word(string, wordNumber, delimiters)"),
];

impl Func {
    /// Resolves a function name, ignoring case (A1).
    pub(crate) fn lookup(name: &str) -> Option<&'static FuncInfo> {
        FUNCTIONS.iter().find(|info| info.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn info(self) -> &'static FuncInfo {
        // The table lists every variant; the fallback is never taken.
        FUNCTIONS.iter().find(|info| info.func == self).unwrap_or(&FUNCTIONS[0])
    }

    pub(crate) fn name(self) -> &'static str {
        self.info().name
    }

    /// False for the functions whose result changes from one evaluation to the next.
    pub(crate) fn is_deterministic(self) -> bool {
        !matches!(self, Func::Now | Func::Guid | Func::RandomString | Func::SelectUniqueValue)
    }
}

/// The bare identifiers the language knows as constants (reference §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Constant {
    VbBinaryCompare,
    VbTextCompare,
    Utf8,
    Ascii,
    Unicode,
    Utf32,
    BigEndianUnicode,
    IgnoreAttributeFlow,
    IgnoreObjectFlow,
}

pub(crate) static CONSTANTS: &[(Constant, &str)] = &[
    (Constant::VbBinaryCompare, "vbBinaryCompare"),
    (Constant::VbTextCompare, "vbTextCompare"),
    (Constant::Utf8, "UTF8"),
    (Constant::Ascii, "ASCII"),
    (Constant::Unicode, "Unicode"),
    (Constant::Utf32, "UTF32"),
    (Constant::BigEndianUnicode, "BigEndianUnicode"),
    (Constant::IgnoreAttributeFlow, "IgnoreAttributeFlow"),
    (Constant::IgnoreObjectFlow, "IgnoreObjectFlow"),
];

impl Constant {
    pub(crate) fn lookup(name: &str) -> Option<Constant> {
        CONSTANTS.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(c, _)| *c)
    }

    pub(crate) fn name(self) -> &'static str {
        CONSTANTS.iter().find(|(c, _)| *c == self).map_or("", |(_, n)| n)
    }
}

/// The closest known name to `name` (case-insensitive edit distance), for "did you mean" hints.
pub(crate) fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&lower, &candidate.to_lowercase());
        let limit = (candidate.chars().count() / 3).clamp(1, 3);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best =
                (d[(i - 1) * width + j] + 1).min(d[i * width + j - 1] + 1).min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_resolves_ignoring_case() {
        for info in FUNCTIONS {
            assert_eq!(Func::lookup(&info.name.to_uppercase()).map(|i| i.func), Some(info.func));
            assert_eq!(info.func.info().name, info.name);
        }
        assert!(Func::lookup("Nope").is_none());
        assert_eq!(Constant::lookup("utf8"), Some(Constant::Utf8));
    }

    #[test]
    fn suggestions() {
        let names = || FUNCTIONS.iter().map(|info| info.name);
        assert_eq!(suggest("Jion", names()), Some("Join"));
        assert_eq!(suggest("replce", names()), Some("Replace"));
        assert_eq!(suggest("SelectUniqueValues", names()), Some("SelectUniqueValue"));
        assert_eq!(suggest("Frobnicate", names()), None);
    }
}
