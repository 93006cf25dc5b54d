//! .NET-compatible regular expressions for Replace (A10): patterns run on `fancy-regex` (lookaround,
//! backreferences, lazy quantifiers, `(?<name>…)`), .NET escapes of punctuation are made portable, and
//! replacements expand .NET's tokens (`$1`, `${name}`, `$$`, `$&`, `` $` ``, `$'`, `$+`, `$_`).
//! Matches are enumerated the .NET way: after an empty match the scan moves one character on, and an
//! empty match right after a non-empty one is allowed.

use std::fmt;

use fancy_regex::{Captures, Regex, RegexBuilder};

/// How many backtracking steps one match may take before it fails (catastrophic patterns).
const BACKTRACK_LIMIT: usize = 1_000_000;

#[derive(Clone)]
pub(crate) struct NetRegex {
    regex: Regex,
}

impl fmt::Debug for NetRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NetRegex").field(&self.regex.as_str()).finish()
    }
}

impl NetRegex {
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        let translated = translate(pattern);
        let regex =
            RegexBuilder::new(&translated).backtrack_limit(BACKTRACK_LIMIT).build().map_err(|e| e.to_string())?;
        Ok(NetRegex { regex })
    }

    #[cfg(test)]
    pub(crate) fn is_match(&self, text: &str) -> Result<bool, String> {
        self.regex.is_match(text).map_err(|e| e.to_string())
    }

    /// Every match, .NET style (see the module comment).
    fn for_each_match(&self, text: &str, mut f: impl FnMut(&Captures<'_, str>)) -> Result<(), String> {
        let mut pos = 0;
        while pos <= text.len() {
            let Some(caps) = self.regex.captures_from_pos(text, pos).map_err(|e| e.to_string())? else {
                break;
            };
            let Some(whole) = caps.get(0) else { break };
            f(&caps);
            if whole.end() > whole.start() {
                pos = whole.end();
            } else {
                // Empty match: step over one character.
                match text[whole.end()..].chars().next() {
                    Some(c) => pos = whole.end() + c.len_utf8(),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// `Regex.Replace(text, pattern, replacement)`: every match replaced by the expanded replacement.
    pub(crate) fn replace_all(&self, text: &str, replacement: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        self.for_each_match(text, |caps| {
            if let Some(whole) = caps.get(0) {
                out.push_str(&text[last..whole.start()]);
                expand(self, caps, text, replacement, &mut out);
                last = whole.end();
            }
        })?;
        out.push_str(&text[last..]);
        Ok(out)
    }

    /// In every match, only the span of group `group` is replaced (A9); a match where the group did not
    /// take part is kept as it is.
    pub(crate) fn replace_group(&self, text: &str, group: &str, replacement: &str) -> Result<String, String> {
        if !self.has_group(group) {
            return Err(format!("the pattern has no group named '{group}'"));
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        self.for_each_match(text, |caps| {
            if let Some(span) = group_match(caps, group) {
                out.push_str(&text[last..span.start()]);
                expand(self, caps, text, replacement, &mut out);
                last = span.end();
            }
        })?;
        out.push_str(&text[last..]);
        Ok(out)
    }

    /// The value of group `group` in the first match, if any.
    pub(crate) fn first_group(&self, text: &str, group: &str) -> Result<Option<String>, String> {
        if !self.has_group(group) {
            return Err(format!("the pattern has no group named '{group}'"));
        }
        let caps = self.regex.captures(text).map_err(|e| e.to_string())?;
        Ok(caps.and_then(|caps| group_match(&caps, group).map(|m| m.as_str().to_owned())))
    }

    fn has_group(&self, group: &str) -> bool {
        match group.parse::<usize>() {
            Ok(n) => n < self.regex.captures_len(),
            Err(_) => self.regex.capture_names().flatten().any(|name| name == group),
        }
    }
}

fn group_match<'t>(caps: &Captures<'t, str>, group: &str) -> Option<fancy_regex::Match<'t>> {
    match group.parse::<usize>() {
        Ok(n) => caps.get(n),
        Err(_) => caps.name(group),
    }
}

/// Makes a .NET pattern readable by fancy-regex: an escaped ASCII punctuation character (`\<`, `\:`,
/// `\/`, `\-` …, all literal in .NET) becomes a hex escape, which means the same literal everywhere,
/// inside a character class or not.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(next) if next.is_ascii_punctuation() || next == ' ' => {
                out.push_str(&format!("\\x{{{:02X}}}", next as u32));
            }
            Some(next) => {
                out.push('\\');
                out.push(next);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Appends the .NET expansion of `replacement` for one match.
fn expand(re: &NetRegex, caps: &Captures<'_, str>, text: &str, replacement: &str, out: &mut String) {
    let group_count = re.regex.captures_len();
    let chars: Vec<char> = replacement.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let next = chars[i + 1];
        match next {
            '$' => {
                out.push('$');
                i += 2;
            }
            '&' => {
                out.push_str(caps.get(0).map_or("", |m| m.as_str()));
                i += 2;
            }
            '`' => {
                out.push_str(caps.get(0).map_or("", |m| &text[..m.start()]));
                i += 2;
            }
            '\'' => {
                out.push_str(caps.get(0).map_or("", |m| &text[m.end()..]));
                i += 2;
            }
            '_' => {
                out.push_str(text);
                i += 2;
            }
            '+' => {
                // The last group of the pattern.
                if group_count > 1 {
                    out.push_str(caps.get(group_count - 1).map_or("", |m| m.as_str()));
                }
                i += 2;
            }
            '{' => {
                let close = chars[i + 2..].iter().position(|&ch| ch == '}').map(|p| p + i + 2);
                let known = close.and_then(|close| {
                    let name: String = chars[i + 2..close].iter().collect();
                    let exists = match name.parse::<usize>() {
                        Ok(n) => n < group_count,
                        Err(_) => re.regex.capture_names().flatten().any(|n| n == name),
                    };
                    exists.then_some((name, close))
                });
                match known {
                    Some((name, close)) => {
                        out.push_str(group_match(caps, &name).map_or("", |m| m.as_str()));
                        i = close + 1;
                    }
                    None => {
                        // .NET keeps an unknown ${name} as literal text.
                        out.push('$');
                        i += 1;
                    }
                }
            }
            d if d.is_ascii_digit() => {
                // The longest run of digits that names an existing group (.NET).
                let mut end = i + 1;
                while end < chars.len() && chars[end].is_ascii_digit() {
                    end += 1;
                }
                let mut matched = None;
                let mut stop = end;
                while stop > i + 1 {
                    let digits: String = chars[i + 1..stop].iter().collect();
                    if let Ok(n) = digits.parse::<usize>() {
                        if n < group_count {
                            matched = Some((n, stop));
                            break;
                        }
                    }
                    stop -= 1;
                }
                match matched {
                    Some((n, stop)) => {
                        out.push_str(caps.get(n).map_or("", |m| m.as_str()));
                        i = stop;
                    }
                    None => {
                        out.push('$');
                        i += 1;
                    }
                }
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_matches_follow_dotnet() {
        let re = NetRegex::new("b*").unwrap();
        assert_eq!(re.replace_all("abc", "-").unwrap(), "-a--c-");
        let re = NetRegex::new("x*").unwrap();
        assert_eq!(re.replace_all("abc", "-").unwrap(), "-a-b-c-");
    }

    #[test]
    fn dotnet_replacement_tokens() {
        let re = NetRegex::new("(?<first>\\w+) (\\w+)").unwrap();
        assert_eq!(re.replace_all("John Smith", "${2}, ${first}").unwrap(), "Smith, John");
        assert_eq!(re.replace_all("John Smith", "$2 $1 $$ $&").unwrap(), "Smith John $ John Smith");
        assert_eq!(re.replace_all("John Smith", "${nope}").unwrap(), "${nope}");
        let around = NetRegex::new("J\\w+ S\\w+").unwrap();
        assert_eq!(around.replace_all("a John Smith b", "[$`|$'|$_]").unwrap(), "a [a | b|a John Smith b] b");
        assert_eq!(re.replace_all("John Smith", "$+").unwrap(), "Smith");
        assert_eq!(re.replace_all("John Smith", "$9").unwrap(), "$9");
    }

    #[test]
    fn dotnet_escapes_of_punctuation() {
        let re = NetRegex::new("([\\/\\\\\\[\\]\\:\\;\\|\\=\\,\\+\\*\\?\\<\\>])").unwrap();
        assert_eq!(re.replace_all("a/b\\c[d]e:f;g|h=i,j+k*l?m<n>o-p", "").unwrap(), "abcdefghijklmno-p");
        let re = NetRegex::new("\\<b\\>").unwrap();
        assert!(re.is_match("a<b>c").unwrap());
    }

    #[test]
    fn lookaround_and_backreferences() {
        let re = NetRegex::new("(?<=@)\\w+").unwrap();
        assert_eq!(re.replace_all("a@b.c", "x").unwrap(), "a@x.c");
        let re = NetRegex::new("(\\w)\\1").unwrap();
        assert_eq!(re.replace_all("aabbc", "_").unwrap(), "__c");
    }

    #[test]
    fn group_span_replacement() {
        let re = NetRegex::new("(?<user>[^@]+)@(?<domain>.+)").unwrap();
        assert_eq!(re.replace_group("jo@old.com", "domain", "new.com").unwrap(), "jo@new.com");
        assert!(re.replace_group("jo@old.com", "nope", "x").is_err());
        assert_eq!(re.first_group("jo@old.com", "user").unwrap().as_deref(), Some("jo"));
    }
}
