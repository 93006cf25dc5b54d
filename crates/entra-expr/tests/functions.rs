//! One test per function of reference §3 (and the operators), through the public API.

// In tests a panic is a failed assertion and a print is a diagnostic; library code is held to the workspace lints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use chrono::{DateTime, Utc};
use entra_expr::{Context, EvalError, Expression, Value};
use serde_json::json;

fn now() -> DateTime<Utc> {
    "2025-07-30T12:00:00Z".parse().unwrap()
}

fn run(expr: &str, object: serde_json::Value) -> Result<Value, EvalError> {
    let expression = Expression::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    expression.evaluate(object.as_object().unwrap(), &Context::at(now()))
}

fn eval(expr: &str, object: serde_json::Value) -> Value {
    run(expr, object).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn s(text: &str) -> Value {
    Value::Str(text.to_owned())
}

fn multi(values: &[&str]) -> Value {
    Value::Multi(values.iter().map(|v| (*v).to_owned()).collect())
}

#[test]
fn append() {
    assert_eq!(eval(r#"Append([mail], "@contoso.com")"#, json!({"mail": "ada"})), s("ada@contoso.com"));
    assert_eq!(eval(r#"Append("SMTP:", [mail])"#, json!({"mail": "a@b.c"})), s("SMTP:a@b.c"));
    assert_eq!(eval(r#"Append([mail], "x")"#, json!({})), s("x"));
    assert_eq!(eval("Append([a], [b])", json!({})), Value::Null);
}

#[test]
fn app_role_assignments() {
    let roles = json!({"appRoleAssignments": ["Default Assignment"]});
    assert_eq!(eval("SingleAppRoleAssignment([appRoleAssignments])", roles.clone()), s("Default Assignment"));
    assert_eq!(eval("AppRoleAssignments([appRoleAssignments])", roles), multi(&["Default Assignment"]));
    let objects = json!({"appRoleAssignments": [{"appRoleDisplayName": "Admin"}, {"displayName": "User"}]});
    assert_eq!(eval("AppRoleAssignmentsComplex([appRoleAssignments])", objects.clone()), multi(&["Admin", "User"]));
    assert_eq!(eval("AssertiveAppRoleAssignmentsComplex([appRoleAssignments])", objects), multi(&["Admin", "User"]));
    assert_eq!(eval("SingleAppRoleAssignment([appRoleAssignments])", json!({})), Value::Null);
}

#[test]
fn bit_functions() {
    assert_eq!(eval("BitAnd(&HF, &HF7)", json!({})), Value::Int(7));
    assert_eq!(eval("BitAnd([flags], 2)", json!({"flags": 514})), Value::Int(2));
    assert_eq!(eval(r#"BitAnd("12", "10")"#, json!({})), Value::Int(8));
    assert_eq!(eval("BitOr(&H1, &h4)", json!({})), Value::Int(5));
    assert!(run(r#"BitAnd("x", 1)"#, json!({})).is_err());
}

#[test]
fn cbool() {
    assert_eq!(eval("CBool([a] = [b])", json!({"a": "x", "b": "x"})), Value::Bool(true));
    assert_eq!(eval("CBool([a] = [b])", json!({"a": "x", "b": "y"})), Value::Bool(false));
    assert_eq!(eval(r#"CBool("1")"#, json!({})), Value::Bool(true));
    assert_eq!(eval("CBool(0)", json!({})), Value::Bool(false));
    assert_eq!(eval(r#"CBool("true")"#, json!({})), Value::Bool(true));
    assert_eq!(eval("CBool([missing])", json!({})), Value::Bool(false));
    assert!(run(r#"CBool("maybe")"#, json!({})).is_err());
}

#[test]
fn cdate_and_rendering() {
    let d = eval(r#"CDate("2020-03-16-07:00")"#, json!({}));
    assert_eq!(d, Value::DateTime("2020-03-16T07:00:00Z".parse().unwrap()));
    assert_eq!(d.to_json(), json!("3/16/2020 7:00:00 AM"));
    assert_eq!(eval("CStr(CDate([d]))", json!({"d": "2021-07-02T15:33:38Z"})), s("7/2/2021 3:33:38 PM"));
    assert_eq!(eval("CDate([d])", json!({})), Value::Null);
    assert!(matches!(run(r#"CDate("not a date")"#, json!({})), Err(EvalError::Function { function: "CDate", .. })));
}

#[test]
fn coalesce() {
    assert_eq!(eval(r#"Coalesce([mail],[otherMail],"none@contoso.com")"#, json!({})), s("none@contoso.com"));
    assert_eq!(eval(r#"Coalesce([mail],[otherMail],"x")"#, json!({"otherMail": "o@x"})), s("o@x"));
    // A5: "" is a value, not null.
    assert_eq!(eval(r#"Coalesce([mail],"x")"#, json!({"mail": ""})), s(""));
    assert_eq!(eval("Coalesce([a],[b])", json!({})), Value::Null);
}

#[test]
fn contains() {
    let proxies = json!({"p": ["smtp:alias@contoso.com", "SMTP:primary@contoso.com"]});
    assert_eq!(eval(r#"Contains([p], "SMTP:")"#, proxies.clone()), Value::Int(2));
    assert_eq!(eval(r#"Contains([p], "SMTP:", vbTextCompare)"#, proxies.clone()), Value::Int(1));
    assert_eq!(eval(r#"Item([p], Contains([p], "SMTP:"))"#, proxies.clone()), s("SMTP:primary@contoso.com"));
    assert_eq!(eval(r#"Contains([p], "x400:")"#, proxies), Value::Int(0));
}

#[test]
fn base64_and_hex() {
    assert_eq!(eval(r#"ConvertToBase64("Hello world!")"#, json!({})), s("SABlAGwAbABvACAAdwBvAHIAbABkACEA"));
    assert_eq!(eval(r#"ConvertFromBase64("SABlAGwAbABvACAAdwBvAHIAbABkACEA")"#, json!({})), s("Hello world!"));
    assert_eq!(eval(r#"ConvertFromBase64("SGVsbG8gd29ybGQh", UTF8)"#, json!({})), s("Hello world!"));
    assert_eq!(eval(r#"ConvertFromBase64("SGVsbG8gd29ybGQh", "ASCII")"#, json!({})), s("Hello world!"));
    assert_eq!(eval(r#"ConvertFromBase64("w6k=", ASCII)"#, json!({})), s("??"));
    assert!(run(r#"ConvertFromBase64("***")"#, json!({})).is_err());
    assert!(run(r#"ConvertFromBase64("SGVsbG8=", "EBCDIC")"#, json!({})).is_err());
    assert_eq!(eval(r#"ConvertToUTF8Hex("Hello world!")"#, json!({})), s("48656C6C6F20776F726C6421"));
    assert_eq!(eval(r#"ConvertToUTF8Hex("é")"#, json!({})), s("C3A9"));
}

#[test]
fn count_item_remove_duplicates() {
    let p = json!({"p": ["a", "b", "a"]});
    assert_eq!(eval("Count([p])", p.clone()), Value::Int(3));
    assert_eq!(eval("Count([x])", json!({})), Value::Int(0));
    assert_eq!(eval("Count([x])", json!({"x": "single"})), Value::Int(1));
    assert_eq!(eval("Item([p], 2)", p.clone()), s("b"));
    assert!(matches!(run("Item([p], 4)", p.clone()), Err(EvalError::Function { function: "Item", .. })));
    assert!(run("Item([p], 0)", p.clone()).is_err());
    assert_eq!(eval("Item([x], 1)", json!({})), Value::Null);
    assert_eq!(eval("RemoveDuplicates([p])", p), multi(&["a", "b"]));
    assert_eq!(eval("RemoveDuplicates([p])", json!({"p": ["A", "a"]})), multi(&["A", "a"]));
}

#[test]
fn cref_cstr_dncomponent() {
    assert_eq!(eval("CStr(BitAnd(6, 3))", json!({})), s("2"));
    assert_eq!(eval("CStr([b])", json!({"b": true})), s("True"));
    assert_eq!(eval("CStr([b])", json!({})), Value::Null);
    let dn = json!({"dn": "cn=Joe,ou=Sales,dc=contoso,dc=com"});
    assert_eq!(eval("DNComponent(CRef([dn]), 1)", dn.clone()), s("Joe"));
    assert_eq!(eval("DNComponent(CRef([dn]), 2)", dn.clone()), s("Sales"));
    assert_eq!(eval("DNComponent(CRef([dn]), 9)", dn), Value::Null);
}

#[test]
fn date_add_and_diff() {
    assert_eq!(
        eval(r#"DateAdd("d", -10, CDate([hire]))"#, json!({"hire": "2025-08-10"})),
        Value::DateTime("2025-07-31T00:00:00Z".parse().unwrap())
    );
    assert_eq!(
        eval(r#"DateAdd("m", "1", CDate("2025-01-31"))"#, json!({})),
        Value::DateTime("2025-02-28T00:00:00Z".parse().unwrap())
    );
    assert_eq!(eval(r#"DateDiff("d", Now(), CDate("2025-08-10"))"#, json!({})), Value::Int(10));
    assert_eq!(eval(r#"DateDiff("yyyy", "2020-12-31", "2021-01-01")"#, json!({})), Value::Int(1));
    assert_eq!(eval(r#"DateDiff("d", Now(), [missing])"#, json!({})), Value::Null);
    assert!(matches!(
        run(r#"DateAdd("fortnight", 1, Now())"#, json!({})),
        Err(EvalError::Function { function: "DateAdd", .. })
    ));
}

#[test]
fn filetime() {
    assert_eq!(
        eval("DateFromNum(129699324000000000)", json!({})),
        Value::DateTime("2012-01-01T23:00:00Z".parse().unwrap())
    );
    assert_eq!(eval(r#"NumFromDate("2012-01-01T23:00:00Z")"#, json!({})), Value::Int(129_699_324_000_000_000));
    assert_eq!(eval("NumFromDate([x])", json!({})), Value::Null);
    assert!(run("DateFromNum(-5)", json!({})).is_err());
}

#[test]
fn format_date_time() {
    assert_eq!(
        eval(r#"FormatDateTime([d], , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")"#, json!({"d": "20150123105347.1Z"})),
        s("2015-01-23")
    );
    assert_eq!(eval(r#"FormatDateTime([d], "yyyy-MM-dd", "dd.MM.yyyy")"#, json!({"d": "2025-07-30"})), s("30.07.2025"));
    // A18: a DateTime source ignores inputFormat.
    assert_eq!(eval(r#"FormatDateTime(Now(), , "nonsense", "yyyy-MM-dd")"#, json!({})), s("2025-07-30"));
    assert_eq!(eval(r#"FormatDateTime([d], "yyyy", "yyyy")"#, json!({})), Value::Null);
    assert!(run(r#"FormatDateTime([d], "yyyy-MM-dd", "yyyy")"#, json!({"d": "July"})).is_err());
}

#[test]
fn default_domain() {
    let expression = Expression::parse(r#"Join("@", [mailNickname], DefaultDomain())"#).unwrap();
    let object = json!({"mailNickname": "ada"});
    let ctx = Context { default_domain: Some("contoso.com"), ..Context::at(now()) };
    assert_eq!(expression.evaluate(object.as_object().unwrap(), &ctx).unwrap(), s("ada@contoso.com"));
    let err = expression.evaluate(object.as_object().unwrap(), &Context::at(now())).unwrap_err();
    assert_eq!(err, EvalError::NoDefaultDomain);
}

#[test]
fn error_function() {
    let err = run(r#"IIF([x]="bad", Error("x is bad"), [x])"#, json!({"x": "bad"})).unwrap_err();
    assert_eq!(err, EvalError::Raised("x is bad".into()));
    assert_eq!(err.to_string(), "Error(): x is bad");
    assert_eq!(eval(r#"IIF([x]="bad", Error("x is bad"), [x])"#, json!({"x": "ok"})), s("ok"));
}

#[test]
fn guid_now_random_are_not_deterministic() {
    for expr in ["Guid()", "Now()", "RandomString(6,3,0,0,3)", r#"SelectUniqueValue([a], "b")"#, "Join(\"\", Guid())"] {
        assert!(!Expression::parse(expr).unwrap().is_deterministic(), "{expr}");
    }
    assert!(Expression::parse(r#"Join(".", [a], [b])"#).unwrap().is_deterministic());
    assert_ne!(eval("Guid()", json!({})), eval("Guid()", json!({})));
}

#[test]
fn ignore_flow_if_null_or_empty() {
    assert_eq!(eval("IgnoreFlowIfNullOrEmpty([x])", json!({"x": ""})), Value::Drop);
    assert_eq!(eval("IgnoreFlowIfNullOrEmpty([x])", json!({})), Value::Drop);
    assert_eq!(eval("IgnoreFlowIfNullOrEmpty([x])", json!({"x": "v"})), s("v"));
    assert_eq!(Value::Drop.to_json(), serde_json::Value::Null);
}

#[test]
fn iif_is_lazy_and_null_conditions_are_false() {
    assert_eq!(eval(r#"IIF([c]="USA",[c],[d])"#, json!({"c": "USA", "d": "Sales"})), s("USA"));
    assert_eq!(eval(r#"IIF([c]="USA",[c],[d])"#, json!({"d": "Sales"})), s("Sales"));
    assert_eq!(eval(r#"IIF([c]<>"USA","not","usa-or-null")"#, json!({})), s("usa-or-null"));
    // Only the chosen branch runs: the other would fail.
    assert_eq!(eval(r#"IIF(1=1, "ok", Error("never"))"#, json!({})), s("ok"));
    assert_eq!(eval(r#"IIF(IsPresent([x]), [x], "none")"#, json!({"x": ""})), s("none"));
    assert!(run(r#"IIF("perhaps", 1, 2)"#, json!({})).is_err());
}

#[test]
fn comparisons_are_number_aware() {
    assert_eq!(eval("IIF([r]=1, \"y\", \"n\")", json!({"r": "1"})), s("y"));
    assert_eq!(eval("IIF([r]=1, \"y\", \"n\")", json!({"r": "01"})), s("y"));
    assert_eq!(eval("IIF([r]=1, \"y\", \"n\")", json!({"r": 1})), s("y"));
    assert_eq!(eval(r#"IIF("10" > "9", "y", "n")"#, json!({})), s("y"));
    assert_eq!(eval(r#"IIF("b" > "a", "y", "n")"#, json!({})), s("y"));
    assert_eq!(eval(r#"IIF("A" = "a", "y", "n")"#, json!({})), s("n"));
    assert_eq!(eval("Len([x]) <= 5", json!({"x": "Smith"})), Value::Bool(true));
    assert_eq!(eval("(1 >= 2)", json!({})), Value::Bool(false));
    assert_eq!(eval(r#"CDate("2025-01-01") < Now()"#, json!({})), Value::Bool(true));
    assert_eq!(eval(r#"Now() = "7/30/2025 12:00:00 PM""#, json!({})), Value::Bool(true));
}

#[test]
fn concatenation_operator() {
    assert_eq!(eval(r#"IIF([t]="Intern","t-" & [alias],[alias])"#, json!({"t": "Intern", "alias": "ada"})), s("t-ada"));
    assert_eq!(eval(r#""a" & [missing] & 1"#, json!({})), s("a1"));
}

#[test]
fn in_str() {
    let e = json!({"e": "john@contoso.com"});
    assert_eq!(eval(r#"InStr([e], "@contoso.com")"#, e.clone()), Value::Int(5));
    assert_eq!(eval(r#"InStr([e], "@fabrikam.com")"#, e.clone()), Value::Int(0));
    assert_eq!(eval(r#"InStr([e], "o", 3)"#, e.clone()), Value::Int(7));
    assert_eq!(eval(r#"InStr([e], "CONTOSO", 1, vbTextCompare)"#, e.clone()), Value::Int(6));
    assert_eq!(eval(r#"InStr([e], "CONTOSO", 1, vbBinaryCompare)"#, e.clone()), Value::Int(0));
    assert_eq!(eval(r#"InStr([x], "a")"#, json!({})), Value::Int(0));
    assert_eq!(eval(r#"InStr("héllo", "l")"#, json!({})), Value::Int(3));
    assert!(run(r#"InStr([e], "o", 0)"#, e).is_err());
}

#[test]
fn is_functions() {
    assert_eq!(eval("IsNull([x])", json!({"x": null})), Value::Bool(true));
    assert_eq!(eval("IsNull([x])", json!({"x": ""})), Value::Bool(false));
    assert_eq!(eval("IsNullOrEmpty([x])", json!({"x": ""})), Value::Bool(true));
    assert_eq!(eval("IsNullOrEmpty([x])", json!({"x": "a"})), Value::Bool(false));
    assert_eq!(eval("IsPresent([x])", json!({"x": ""})), Value::Bool(false));
    assert_eq!(eval("IsPresent([x])", json!({"x": "a"})), Value::Bool(true));
    assert_eq!(eval("IsString([x])", json!({"x": "a"})), Value::Bool(true));
    assert_eq!(eval("IsString([x])", json!({})), Value::Bool(false));
    assert_eq!(eval("IsString([x])", json!({"x": ["a", "b"]})), Value::Bool(false));
}

#[test]
fn join() {
    assert_eq!(
        eval(r#"Join(", ", "", [surname], [givenName])"#, json!({"surname": "Doe", "givenName": "John"})),
        s("Doe, John")
    );
    assert_eq!(eval(r#"Join(";", [p])"#, json!({"p": ["a", "b"]})), s("a;b"));
    assert_eq!(eval(r#"Join("", 1000, [x])"#, json!({"x": "7"})), s("10007"));
    assert_eq!(eval(r#"Join(".", [a], [b])"#, json!({})), s(""));
    assert_eq!(eval(r#"Join(ToLower("-X-"), [a], [b], 3)"#, json!({"a": 1, "b": true})), s("1-x-True-x-3"));
}

#[test]
fn left_right_mid_len() {
    let o = json!({"s": "Johnson"});
    assert_eq!(eval("Left([s], 3)", o.clone()), s("Joh"));
    assert_eq!(eval("Left([s], 0)", o.clone()), s(""));
    assert_eq!(eval("Left([s], -1)", o.clone()), s("Johnson"));
    assert_eq!(eval("Left([s], 99)", o.clone()), s("Johnson"));
    assert_eq!(eval("Left([x], 2)", json!({})), s(""));
    assert_eq!(eval("Right([s], 3)", o.clone()), s("son"));
    assert_eq!(eval("Mid([s], 3, 100)", o.clone()), s("hnson"));
    assert_eq!(eval(r#"Mid([s], "1", "1")"#, o.clone()), s("J"));
    assert_eq!(eval("Mid([s], 3)", o.clone()), s("hnson"));
    assert_eq!(eval("Mid([s], 50, 2)", o.clone()), s(""));
    assert_eq!(eval("Mid([s], 0, 2)", o.clone()), s(""));
    assert_eq!(eval("Mid([x], 1, 1)", json!({})), Value::Null);
    assert_eq!(eval("Mid(\"Łódź\", 2, 2)", json!({})), s("ód"));
    assert_eq!(eval("Len([s])", o), Value::Int(7));
    assert_eq!(eval("Len(42568)", json!({})), Value::Int(5));
    assert_eq!(eval("Len(42568.75)", json!({})), Value::Int(8));
    assert_eq!(eval("Len([x])", json!({})), Value::Int(0));
    assert!(run("Mid([s], \"a\", 1)", json!({"s": "x"})).is_err());
}

#[test]
fn normalize_diacritics() {
    assert_eq!(eval("NormalizeDiacritics([s])", json!({"s": "Æsa Øst Straße Łódź"})), s("AEsa OEst Strasse Lodz"));
    assert_eq!(eval("NormalizeDiacritics([s])", json!({"s": ["José", "Zoë"]})), multi(&["Jose", "Zoe"]));
}

#[test]
fn not() {
    assert_eq!(eval(r#"Not("True")"#, json!({})), s("False"));
    assert_eq!(eval(r#"Not("False")"#, json!({})), s("True"));
    assert_eq!(eval(r#"Not("anything")"#, json!({})), s("True"));
    assert_eq!(eval("Not([b])", json!({"b": true})), s("False"));
    assert_eq!(eval("Not(IsPresent([x]))", json!({})), s("True"));
}

#[test]
fn pcase() {
    assert_eq!(eval(r#"PCase("PABLO GONSALVES (SECOND)")"#, json!({})), s("Pablo Gonsalves (Second)"));
    assert_eq!(eval(r#"PCase("mary-ann o'neil")"#, json!({})), s("Mary-Ann O'neil"));
    assert_eq!(eval(r#"PCase("john_smith jones", "_")"#, json!({})), s("John_Smith jones"));
}

#[test]
fn random_string() {
    let Value::Str(value) = eval("RandomString(6,3,0,0,3)", json!({})) else { panic!("not a string") };
    assert_eq!(value.chars().count(), 6);
    assert!(run("RandomString(3,2,2,0,0)", json!({})).is_err());
    assert!(run("RandomString(300,0,0,0,0)", json!({})).is_err());
}

#[test]
fn redact() {
    assert_eq!(eval("Redact([u])", json!({"u": "jsmith@contoso.com"})), s("jsmith@contoso.com"));
    assert_eq!(eval("Redact([u])", json!({})), Value::Null);
}

#[test]
fn replace_modes() {
    // 1. oldValue + replacementValue
    assert_eq!(eval(r#"Replace([mail], "@contoso.com", , ,"", ,)"#, json!({"mail": "ada@contoso.com"})), s("ada"));
    assert_eq!(eval(r#"Replace([l], "-", , , "_", , )"#, json!({"l": "en-US-x"})), s("en_US_x"));
    assert_eq!(eval(r#"Replace([l], "-", , , "_", , )"#, json!({})), Value::Null);
    // 2. oldValue + template
    assert_eq!(eval(r#"Replace([id], "{id}", , , , , "user-{id}@x")"#, json!({"id": "42"})), s("user-42@x"));
    // 3. regexPattern + replacementValue
    assert_eq!(eval(r#"Replace([m], , "[()\\s-]+", , "", , )"#, json!({"m": "+1 (999) 888-7777"})), s("+19998887777"));
    assert_eq!(
        eval(r#"Replace([x], , "(?<a>\\w+)@(?<b>\\w+)", , "${b}-$1-$$", , )"#, json!({"x": "jo@ex"})),
        s("ex-jo-$")
    );
    // 4. regexPattern + regexGroupName + replacementValue: only the group's span (A9)
    assert_eq!(
        eval(r#"Replace([x], , "(?<user>[^@]+)@(?<domain>.+)", "domain", "new.com", , )"#, json!({"x": "jo@old.com"})),
        s("jo@new.com")
    );
    // 5. regexPattern + regexGroupName + replacementAttributeName (F, A8)
    let expr = r#"Replace([telephoneNumber], , "\\+(?<isdCode>\\d* )(?<phoneNumber>.*)", "phoneNumber", , [mobile], )"#;
    assert_eq!(eval(expr, json!({"mobile": "+91 999999999"})), s("999999999"));
    assert_eq!(eval(expr, json!({"telephoneNumber": "12345", "mobile": "+91 1"})), s("12345"));
    // A pattern from an attribute is compiled at evaluation; a bad one is an evaluation error.
    assert_eq!(eval(r#"Replace("a1b2", , [p], , "", , )"#, json!({"p": "[0-9]"})), s("ab"));
    assert!(run(r#"Replace("a1b2", , [p], , "", , )"#, json!({"p": "("})).is_err());
    // Case-sensitive ordinal replacement.
    assert_eq!(eval(r#"Replace("Aa", "a", , , "x", , )"#, json!({})), s("Ax"));
}

#[test]
fn select_unique_value() {
    let expression = Expression::parse(r#"SelectUniqueValue(Join(".", [a], [b]), Join("", [a], [b]), [b])"#).unwrap();
    let object = json!({"a": "x", "b": "y"});
    let taken = ["x.y", "xy"];
    let is_taken = |v: &str| taken.contains(&v);
    let ctx = Context { is_taken: Some(&is_taken), ..Context::at(now()) };
    assert_eq!(expression.evaluate(object.as_object().unwrap(), &ctx).unwrap(), s("y"));
    let all_taken = |_: &str| true;
    let ctx = Context { is_taken: Some(&all_taken), ..Context::at(now()) };
    let err = expression.evaluate(object.as_object().unwrap(), &ctx).unwrap_err();
    assert_eq!(err, EvalError::NoUniqueValue { tried: vec!["x.y".into(), "xy".into(), "y".into()] });
    // Sequential: once a free candidate is found, later rules are not evaluated.
    assert_eq!(eval(r#"SelectUniqueValue("first", Error("never"))"#, json!({})), s("first"));
}

#[test]
fn split() {
    assert_eq!(eval(r#"Split([s], ",")"#, json!({"s": "a,b, c"})), multi(&["a", "b", " c"]));
    assert_eq!(eval(r#"Split([s], ",")"#, json!({})), Value::Null);
    assert_eq!(eval(r#"Split([s], "")"#, json!({"s": "abc"})), multi(&["abc"]));
}

#[test]
fn string_from_sid() {
    // S-1-5-32-544 (BUILTIN\Administrators) as Graph returns binary: base64.
    assert_eq!(eval("StringFromSid([sid])", json!({"sid": "AQIAAAAAAAUgAAAAIAIAAA=="})), s("S-1-5-32-544"));
    assert_eq!(eval("StringFromSid([sid])", json!({"sid": "S-1-5-18"})), s("S-1-5-18"));
    assert!(run("StringFromSid([sid])", json!({"sid": "AQI="})).is_err());
}

#[test]
fn strip_spaces_trim() {
    assert_eq!(eval("StripSpaces([s])", json!({"s": " Mary Ann Lee "})), s("MaryAnnLee"));
    assert_eq!(eval("Trim([s])", json!({"s": "  a b \t"})), s("a b"));
    assert_eq!(eval("Trim([s])", json!({"s": [" a ", "b "]})), multi(&["a", "b"]));
    assert_eq!(eval("Trim([s])", json!({})), Value::Null);
}

#[test]
fn switch() {
    let expr = r#"Switch([c], "Other", "USA", "US", "Canada", "CA")"#;
    assert_eq!(eval(expr, json!({"c": "Canada"})), s("CA"));
    assert_eq!(eval(expr, json!({"c": "canada"})), s("Other"));
    assert_eq!(eval(r#"Switch([c], , "USA", "US")"#, json!({"c": "France"})), Value::Null);
    // A null source matches "" (A22), booleans render True/False.
    assert_eq!(eval(r#"Switch([c], [c], "", "none")"#, json!({})), s("none"));
    assert_eq!(eval(r#"Switch(IsPresent([j]), "Default", "True", [j])"#, json!({"j": "Dev"})), s("Dev"));
    assert_eq!(eval(r#"Switch(IsPresent([j]), "Default", "True", [j])"#, json!({})), s("Default"));
    // Lazy: neither the default nor the other values run.
    assert_eq!(eval(r#"Switch("a", Error("d"), "b", Error("b"), "a", "yes")"#, json!({})), s("yes"));
    assert_eq!(eval(r#"switch([c], "x", "y", "z")"#, json!({"c": "y"})), s("z"));
}

#[test]
fn to_lower_to_upper() {
    assert_eq!(eval("ToLower([s])", json!({"s": "ÀBC"})), s("àbc"));
    assert_eq!(eval(r#"ToUpper([s], "en-US")"#, json!({"s": "abc"})), s("ABC"));
    assert_eq!(eval(r#"ToUpper([s], "tr-TR")"#, json!({"s": "istanbul"})), s("İSTANBUL"));
    assert_eq!(eval("ToLower(Mid([s], 2, 64), )", json!({"s": "JOHNSON"})), s("ohnson"));
    assert_eq!(eval("ToLower([s])", json!({})), Value::Null);
}

#[test]
fn word() {
    assert_eq!(eval(r#"Word("The quick brown fox", 3, " ")"#, json!({})), s("brown"));
    assert_eq!(eval(r#"Word("This,string!has&many separators", 3, ",!&#")"#, json!({})), s("has"));
    assert_eq!(eval(r#"Word([x], 1, " ")"#, json!({})), s(""));
    assert_eq!(eval(r#"Word("a b", 0, " ")"#, json!({})), s(""));
}

#[test]
fn sentinels_and_constants() {
    assert_eq!(eval(r#"IIF(1=1, IgnoreObjectFlow, "x")"#, json!({})), Value::IgnoreObject);
    assert_eq!(eval(r#"IIF(1=2, "x", ignoreattributeflow)"#, json!({})), Value::IgnoreAttribute);
}

#[test]
fn multi_valued_input_to_a_single_value_function_is_an_error() {
    let err = run("Left([p], 2)", json!({"p": ["a", "b"]})).unwrap_err();
    assert_eq!(err.to_string(), "Left: expects a single value, found a multi-valued attribute with 2 values");
    assert_eq!(eval("Left([p], 2)", json!({"p": ["abc"]})), s("ab"));
}

#[test]
fn attributes_case_insensitive_fallback_and_listing() {
    assert_eq!(eval("[GivenName]", json!({"givenName": "Ada"})), s("Ada"));
    assert_eq!(eval("[givenName]", json!({"givenName": "Ada", "GivenName": "Other"})), s("Ada"));
    let expression = Expression::parse(r#"Join(".", [givenName], [surname], [givenName])"#).unwrap();
    assert_eq!(expression.attributes(), vec!["givenName", "surname"]);
    assert_eq!(expression.text(), r#"Join(".", [givenName], [surname], [givenName])"#);
    assert_eq!(eval("[straße]", json!({"STRASSE": "no", "Straße": "yes"})), s("yes"));
    assert_eq!(eval("[ÉCOLE]", json!({"école": "e"})), s("e"));
    assert_eq!(eval("[passwordProfile.password]", json!({"passwordProfile.password": "p"})), s("p"));
}

#[test]
fn values_to_json() {
    assert_eq!(eval("IsNull([x])", json!({})).to_json(), json!(true));
    assert_eq!(eval("Count([x])", json!({"x": ["a"]})).to_json(), json!(1));
    assert_eq!(eval(r#"Split("a,b", ",")"#, json!({})).to_json(), json!(["a", "b"]));
    assert_eq!(Value::Float(1.5).to_json(), json!(1.5));
    assert_eq!(Value::IgnoreObject.to_json(), serde_json::Value::Null);
    assert!(Value::Multi(vec![]).is_null_or_empty());
    assert!(!Value::Int(0).is_null_or_empty());
}

#[test]
fn expression_is_send_sync_clone() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<Expression>();
    assert_traits::<Value>();
}
