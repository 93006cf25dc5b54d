//! The grammar of reference §2.3, the messages of parse errors, the length limit, and a fuzz check that
//! neither parsing nor evaluating panics on random or mutated input.

// In tests a panic is a failed assertion and a print is a diagnostic; library code is held to the workspace lints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use chrono::{DateTime, Utc};
use entra_expr::{Context, Expression, ParseError, Value, MAX_LENGTH};
use serde_json::json;

fn parse_err(text: &str) -> ParseError {
    match Expression::parse(text) {
        Ok(e) => panic!("{text} parsed: {e:?}"),
        Err(e) => e,
    }
}

fn eval(text: &str) -> Value {
    let object = json!({"a": "x", "b": "y"});
    let now: DateTime<Utc> = "2025-07-30T12:00:00Z".parse().unwrap();
    Expression::parse(text).unwrap().evaluate(object.as_object().unwrap(), &Context::at(now)).unwrap()
}

#[test]
fn grammar_constructs() {
    // Escapes (A2): \\ and \" are unescaped, any other \x stays as it is.
    assert_eq!(eval(r#""Company name: \"Contoso\"""#), Value::Str("Company name: \"Contoso\"".into()));
    assert_eq!(eval(r#""a\\b\+c\d""#), Value::Str("a\\b\\+c\\d".into()));
    // Numbers: integers, negatives, decimals, hex; a number literal is a string constant.
    assert_eq!(eval("-10"), Value::Str("-10".into()));
    assert_eq!(eval("42568.75"), Value::Str("42568.75".into()));
    assert_eq!(eval("&HFF"), Value::Int(255));
    // Whitespace and newlines between tokens, a space before '(', lower-case names.
    assert_eq!(eval("Join (\n  \".\" ,\r\n\t[a] , [b]\n)"), Value::Str("x.y".into()));
    assert_eq!(eval("jOiN(\".\", [a], [b])"), Value::Str("x.y".into()));
    // Empty slots, including a trailing one.
    assert_eq!(eval("ToLower(Mid([a], 1, 1), )"), Value::Str("x".into()));
    assert_eq!(eval("Replace([a],,\"x\",,\"z\",,)"), Value::Str("z".into()));
    // Parentheses and comparisons.
    assert_eq!(eval("(([a]))"), Value::Str("x".into()));
    assert_eq!(eval("[a]<>[b]"), Value::Bool(true));
    assert_eq!(eval("[a] >= [b]"), Value::Bool(false));
    assert_eq!(eval("[a] < [b]"), Value::Bool(true));
    // Bare attribute or literal at the top level.
    assert_eq!(eval("[b]"), Value::Str("y".into()));
    assert_eq!(eval("\"\""), Value::Str(String::new()));
}

#[test]
fn error_positions_and_messages() {
    let e = parse_err(r#"Join(",", [a] [b])"#);
    assert_eq!(e.position, 15);
    assert_eq!(
        e.to_string(),
        "at character 15: expected ',' or ')' after an argument of Join, found the attribute [b]"
    );

    let e = parse_err(r#"Join(",", [a]]"#);
    assert_eq!(e.to_string(), "at character 14: expected ',' or ')' after an argument of Join, found ']'");
    assert!(parse_err("]").message.contains("found ']'"));

    let e = parse_err("Jion(\".\", [a])");
    assert_eq!(e.position, 1);
    assert_eq!(e.message, "unknown function 'Jion'; did you mean Join?");

    let e = parse_err("NormaliseDiacritics([a])");
    assert!(e.message.contains("did you mean NormalizeDiacritics?"), "{e}");

    let e = parse_err("Mid([a], 1, 2, 3, 4)");
    assert_eq!(e.to_string(), "at character 1: Mid takes 2 to 3 arguments, found 5: Mid(source, start, length)");

    let e = parse_err("  IIF([a]=1, 2)");
    assert_eq!(e.position, 3);
    assert!(e.message.starts_with("IIF takes 3 arguments, found 2: IIF(condition, valueIfTrue, valueIfFalse)"), "{e}");

    let e = parse_err("Now");
    assert!(e.message.contains("Now is a function"), "{e}");

    let e = parse_err("Join(\".\", givenName)");
    assert_eq!(e.position, 11);
    assert!(e.message.contains("[givenName]"), "{e}");

    let e = parse_err("Join(\".\", [a)");
    assert_eq!(e.position, 11);
    assert!(e.message.contains("never closed"), "{e}");

    let e = parse_err("Join(\".\", \"abc)");
    assert_eq!(e.position, 11);
    assert!(e.message.contains("never closed"), "{e}");

    let e = parse_err("Join(\".\", [a]");
    assert!(e.message.contains("never closed: add a ')'"), "{e}");

    let e = parse_err("Join(\".\", [a]))");
    assert_eq!(e.position, 15);
    assert!(e.message.contains("one ')' too many"), "{e}");

    let e = parse_err("IIF([a] = 1 = 2, 1, 2)");
    assert_eq!(e.position, 13);
    assert!(e.message.contains("nest IIF"), "{e}");

    let e = parse_err("Switch([a], \"d\", \"k\")");
    assert!(e.message.contains("pairs"), "{e}");

    let e = parse_err("Replace([a], , , , \"x\", , )");
    assert!(e.message.contains("needs oldValue"), "{e}");

    let e = parse_err("Replace([a], , \"(\", , \"x\", , )");
    assert_eq!(e.position, 16);
    assert!(e.message.starts_with("Replace: the regular expression is not valid"), "{e}");

    let e = parse_err("'single'");
    assert!(e.message.contains("double quotes"), "{e}");

    let e = parse_err("[a] - 1");
    assert_eq!(e.position, 5);

    let e = parse_err("Join(\"é\", [a], %)");
    assert_eq!(e.position, 16, "positions count characters, not bytes");

    assert_eq!(parse_err("").position, 1);
    assert_eq!(parse_err("   ").position, 1);
    assert!(parse_err("[]").message.contains("needs a name"));
    assert!(parse_err("&HFFFFFFFFFFFFFFFFFF").message.contains("too large"));
    assert!(parse_err("Join(\".\", 12abc)").message.contains("cannot run into a name"));
    assert!(parse_err("Joinn").message.contains("did you mean Join?"));
    assert!(parse_err("vbTextCompar").message.contains("did you mean vbTextCompare?"));
}

#[test]
fn length_limit() {
    let at_limit = format!("\"{}\"", "a".repeat(MAX_LENGTH - 2));
    assert!(Expression::parse(&at_limit).is_ok());
    let over = format!("\"{}\"", "a".repeat(MAX_LENGTH - 1));
    let e = parse_err(&over);
    assert_eq!(e.position, MAX_LENGTH + 1);
    assert_eq!(e.message, "the expression is 10001 characters long; the limit is 10000 characters");
    // Characters, not bytes.
    let wide = format!("\"{}\"", "é".repeat(MAX_LENGTH - 2));
    assert!(Expression::parse(&wide).is_ok());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}[a]{}", "(".repeat(4000), ")".repeat(4000));
    assert!(parse_err(&deep).message.contains("nests more than"));
    let deep_calls = format!("{}[a]{}", "Trim(".repeat(1500), ")".repeat(1500));
    assert!(parse_err(&deep_calls).message.contains("nests more than"));
    // The deepest accepted nesting evaluates on a test thread's stack (2 MiB), even in a debug build.
    for inner in ["Trim(", "IIF(1=1, ", "Join(\".\", ", "Switch(\"\", ", "Replace("] {
        let mut depth = 200;
        let closing = match inner {
            "Switch(\"\", " => ", \"\", [a])",
            "IIF(1=1, " => ", 1)",
            "Replace(" => ", \"a\", , , \"b\", , )",
            _ => ")",
        };
        let deepest = loop {
            let text = format!("{}[a]{}", inner.repeat(depth), closing.repeat(depth));
            if Expression::parse(&text).is_ok() {
                break text;
            }
            depth -= 1;
        };
        assert!(depth >= 40, "{inner}: {depth}");
        let value = Expression::parse(&deepest)
            .unwrap()
            .evaluate(json!({"a": "x"}).as_object().unwrap(), &Context::at(Utc::now()));
        assert!(value.is_ok(), "{inner}: {value:?}");
    }
}

#[test]
fn extreme_numbers_never_panic() {
    let extremes = [
        "Mid([a], -9223372036854775808, 9223372036854775807)",
        "Mid([a], 9223372036854775807, -9223372036854775808)",
        "Left([a], -9223372036854775808)",
        "Right([a], 9223372036854775807)",
        "InStr([a], \"x\", 9223372036854775807)",
        "InStr([a], \"\", 9223372036854775807, vbTextCompare)",
        "Item([b], 9223372036854775807)",
        "Item([b], -9223372036854775808)",
        "Word([a], -9223372036854775808, \" \")",
        "Word([a], 9223372036854775807, \" \")",
        "DNComponent([a], 9223372036854775807)",
        "BitAnd(&H7FFFFFFFFFFFFFFF, -1)",
        "BitOr(99999999999999999999999, 1)",
        "RandomString(9223372036854775807, 9223372036854775807, 1, 1, 1)",
        "RandomString(256, 9223372036854775807, 9223372036854775807, 9223372036854775807, 9223372036854775807)",
        "DateAdd(\"yyyy\", 99999999999999999999999, Now())",
        "DateAdd(\"s\", 9223372036854775807, Now())",
        "DateAdd(\"m\", -9223372036854775808, Now())",
        "DateDiff(\"s\", \"0001-01-01\", \"9999-12-31T23:59:59Z\")",
        "DateDiff(\"ww\", \"0001-01-01\", \"9999-12-31\")",
        "DateFromNum(9223372036854775807)",
        "DateFromNum(-9223372036854775808)",
        "NumFromDate(\"9999-12-31T23:59:59.9999999Z\")",
        "NumFromDate(\"0001-01-01\")",
        "FormatDateTime(\"0001-01-01\", \"yyyy-MM-dd\", \"yyyy-MM-dd zzz K fffffff\")",
        "Len(-0.0000000000000000000000000000001)",
        "[a] = 1.79769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
        "Replace([a], , \"(a*)*b\", , \"x\", , )",
        "Replace([a], , \"(?<g>)\", \"g\", \"$$${g}$0$99$\", , )",
        "ConvertFromBase64(\"AAAA\", UTF32)",
        "ConvertFromBase64(\"/////w==\", UTF32)",
        "ConvertFromBase64(\"AA==\", BigEndianUnicode)",
        "StringFromSid(\"AQ8AAAAAAAU=\")",
    ];
    let object = json!({"a": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", "b": ["x", "y"]});
    let now: DateTime<Utc> = "2025-07-30T12:00:00Z".parse().unwrap();
    for text in extremes {
        let expression = Expression::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        // An error is fine; a panic fails the test.
        if let Ok(value) = expression.evaluate(object.as_object().unwrap(), &Context::at(now)) {
            std::hint::black_box(value.to_json());
        }
    }
}

/// xorshift64*: a small deterministic generator (no new dependencies).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"Join(".", [givenName], [surname])"#,
    r#"Replace([mobile], , "\\+(?<isdCode>\\d* )(?<phoneNumber>.*)", , "${phoneNumber}", , )"#,
    r#"Switch([Active], , "1", IIF(DateDiff("d", Now(), CDate([StatusHireDate])) > 5, "False", "True"), "0", "False")"#,
    r#"SelectUniqueValue(NormalizeDiacritics(Join(" ", [a], [b])), Mid([a], 1, 1))"#,
    r#"IIF([country]="USA","t-" & [alias],[alias])"#,
    r#"FormatDateTime([d], , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")"#,
    r#"BitAnd(&HF, &HF7) >= -10.5"#,
    r#"ConvertFromBase64(ConvertToBase64([a]), UTF8)"#,
    r#"Word([a], 2, " ,") <> Left(Right(PCase([b]), 3), 2)"#,
    r#"RandomString(10,2,2,2,1,"?,")"#,
];

const ALPHABET: &[char] = &[
    '(', ')', ',', '[', ']', '"', '\\', '&', 'H', '=', '<', '>', '-', '.', '1', '9', ' ', '\n', 'a', 'é', '$', '{',
    '}', '?', '*', '+', '|', '\'', '%', '\u{0}', '日',
];

const NAMES: &[&str] = &[
    "Join",
    "Mid",
    "IIF",
    "Switch",
    "Replace",
    "Item",
    "Split",
    "DateAdd",
    "DateDiff",
    "CDate",
    "FormatDateTime",
    "NumFromDate",
    "DateFromNum",
    "Word",
    "InStr",
    "Left",
    "Right",
    "Len",
    "PCase",
    "Coalesce",
    "Count",
    "BitAnd",
    "ConvertFromBase64",
    "StringFromSid",
    "DNComponent",
    "RandomString",
    "Contains",
    "Not",
    "CBool",
    "Trim",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(2) {
        match rng.below(5) {
            0 if !chars.is_empty() => {
                let i = rng.below(chars.len());
                chars.remove(i);
            }
            1 => {
                let i = rng.below(chars.len() + 1);
                chars.insert(i, ALPHABET[rng.below(ALPHABET.len())]);
            }
            2 if !chars.is_empty() => {
                let i = rng.below(chars.len());
                chars[i] = ALPHABET[rng.below(ALPHABET.len())];
            }
            3 => {
                let i = rng.below(chars.len() + 1);
                let name = NAMES[rng.below(NAMES.len())];
                let insert = format!("{name}([a], {}, \"{}\")", rng.below(40) as i64 - 20, rng.below(7));
                for (k, c) in insert.chars().enumerate() {
                    chars.insert(i + k, c);
                }
            }
            _ if chars.len() > 2 => {
                let i = rng.below(chars.len() - 1);
                chars.truncate(i + 1);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

#[test]
fn parse_and_evaluate_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let objects = [
        json!({}),
        json!({"a": "x,y z", "b": ["1", "2"], "givenName": "Łódź", "d": "20150123105347.1Z", "mobile": "+1 555"}),
        json!({"a": "", "b": 12, "Active": "1", "StatusHireDate": "9999-12-31", "country": true}),
    ];
    let now: DateTime<Utc> = "2025-07-30T12:00:00Z".parse().unwrap();
    let all_taken = |_: &str| true;
    let ctx = Context { now, default_domain: Some("contoso.com"), is_taken: Some(&all_taken) };
    let (mut parsed, mut rejected) = (0, 0);
    for round in 0..4000 {
        let text = if round % 5 == 0 {
            // Pure noise.
            let length = rng.below(60);
            (0..length).map(|_| ALPHABET[rng.below(ALPHABET.len())]).collect()
        } else {
            let seed = SEEDS[rng.below(SEEDS.len())];
            mutate(&mut rng, seed)
        };
        match Expression::parse(&text) {
            Ok(expression) => {
                parsed += 1;
                for object in &objects {
                    // Ok or a typed error are both fine; a panic is not.
                    if let Ok(value) = expression.evaluate(object.as_object().unwrap(), &ctx) {
                        std::hint::black_box(value.to_json());
                    }
                }
            }
            Err(e) => {
                rejected += 1;
                let length = text.chars().count();
                assert!(e.position >= 1 && e.position <= length + 1, "{text:?}: position {} of {length}", e.position);
                assert!(!e.message.is_empty());
            }
        }
    }
    println!("fuzz: {parsed} parsed and evaluated, {rejected} rejected");
    assert!(parsed > 100 && rejected > 100, "the generator should produce both: {parsed}/{rejected}");
}
