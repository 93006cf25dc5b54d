//! `entrasync mapping eval` through the real binary: a good expression prints its result as JSON and
//! exits 0; a bad one prints the position with a caret on stderr and exits 2; a bad --object exits 2
//! naming the problem. No database, broker or configuration is needed — not even a valid one.

use std::process::Output;

use crate::support::app::binary;

fn eval(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut all = vec!["mapping", "eval"];
    all.extend_from_slice(args);
    let Output { status, stdout, stderr } = binary(&all, vars).output().expect("run entrasync");
    (status.code(), String::from_utf8(stdout).expect("utf-8"), String::from_utf8(stderr).expect("utf-8"))
}

#[test]
fn a_good_expression_prints_its_result_as_json_and_exits_zero() {
    let (code, out, err) = eval(
        &[
            "--expression",
            r#"Join(".", [givenName], [surname])"#,
            "--object",
            r#"{"givenName":"Ada","surname":"Lovelace"}"#,
        ],
        // A configuration that would stop every other command does not matter here.
        &[("ENTRASYNC_DATABASE_POOL_SIZE", "not a number"), ("ENTRASYNC_NO_SUCH_SETTING", "x")],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "\"Ada.Lovelace\"\n", ""));

    let (code, out, _) = eval(&["--expression", "[missing]"], &[]);
    assert_eq!((code, out.as_str()), (Some(0), "null\n"));
    let (code, out, _) = eval(&["--expression", "[tags]", "--object", r#"{"tags":["a","b"]}"#], &[]);
    assert_eq!((code, out.as_str()), (Some(0), "[\"a\",\"b\"]\n"));
}

#[test]
fn a_bad_expression_shows_where_and_exits_two() {
    let expression = r#"Join(".", [givenName]"#;
    let (code, out, err) = eval(&["--expression", expression, "--object", "{}"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "message, expression, caret: {err}");
    let position: usize = lines[0]
        .split("at character ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a position in {:?}", lines[0]));
    assert!(position > 1 && position <= expression.chars().count() + 1, "{err}");
    assert_eq!(lines[1], format!("  {expression}"));
    assert_eq!(lines[2], format!("  {}^", " ".repeat(position - 1)), "the caret is under character {position}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_bad_object_exits_two_naming_the_problem() {
    let (code, out, err) = eval(&["--expression", "[a]", "--object", r#"{"a": "#], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("--object is not valid JSON"), "{err}");
    let (code, _, err) = eval(&["--expression", "[a]", "--object", r#""text""#], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("must be a JSON object") && err.contains("a string"), "{err}");
    // A missing --expression is clap's usage error, also 2.
    let (code, _, err) = eval(&["--object", "{}"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--expression"), "{err}");
}
