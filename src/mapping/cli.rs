//! `entrasync mapping eval`: try an expression on an object without a database or a running service.
//! The result goes to stdout as JSON (a string, number, boolean, array or null) and the command exits
//! 0. A bad expression or object prints what is wrong on stderr and exits 2 (for an expression: the
//! position, the expression and a caret under the character); an expression that parses but fails on
//! this object exits 1.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use entra_expr::{Context, Expression, ParseError};
use serde_json::{Map, Value};

/// `entrasync mapping …`
#[derive(Debug, clap::Subcommand)]
pub enum MappingCommand {
    /// Evaluate an expression of the Entra expression language against an object and print the result
    /// as JSON (docs/mappings.md).
    Eval(EvalArgs),
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The expression, e.g. 'Join(".", [givenName], [surname])'.
    #[arg(long)]
    pub expression: String,
    /// The object's attributes as a JSON object, e.g. '{"givenName":"Ada"}'.
    #[arg(long, default_value = "{}")]
    pub object: String,
    /// The value of Now(), RFC 3339 (default: the current time).
    #[arg(long, value_parser = rfc3339)]
    pub now: Option<DateTime<Utc>>,
    /// The tenant's default domain, for DefaultDomain().
    #[arg(long)]
    pub default_domain: Option<String>,
}

fn rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time like 2026-12-06T12:00:00Z: {e}"))
}

/// Runs a `mapping` command; the process's exit code.
pub fn run(command: &MappingCommand) -> u8 {
    match command {
        MappingCommand::Eval(args) => eval(args, &mut io::stdout().lock(), &mut io::stderr().lock()),
    }
}

/// `mapping eval`, writing to `out` and `err`; returns the exit code (0, 1 or 2).
pub fn eval(args: &EvalArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let expression = match Expression::parse(&args.expression) {
        Ok(expression) => expression,
        Err(e) => {
            report(err, &format!("the expression does not parse, {e}\n{}", caret(&args.expression, &e)));
            return 2;
        }
    };
    let object: Map<String, Value> = match serde_json::from_str::<Value>(&args.object) {
        Ok(Value::Object(object)) => object,
        Ok(other) => {
            report(
                err,
                &format!(
                    "--object must be a JSON object of attributes, like {{\"givenName\":\"Ada\"}}; got {}",
                    kind(&other)
                ),
            );
            return 2;
        }
        Err(e) => {
            report(err, &format!("--object is not valid JSON: {e}"));
            return 2;
        }
    };
    let mut context = Context::at(args.now.unwrap_or_else(Utc::now));
    context.default_domain = args.default_domain.as_deref();
    match expression.evaluate(&object, &context) {
        Ok(value) => {
            let text = value.to_json().to_string();
            match writeln!(out, "{text}").and_then(|()| out.flush()) {
                // A reader that went away (`| head -c0`) is not a failure of the expression.
                Ok(()) => 0,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
                Err(_) => 1,
            }
        }
        Err(e) => {
            report(err, &format!("the expression failed on this object: {e}"));
            1
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The expression on one line and a caret under the character the error points at (1-based). Long
/// expressions are cut to a window around the position; line breaks show as spaces.
pub fn caret(expression: &str, error: &ParseError) -> String {
    const WINDOW: usize = 60;
    let chars: Vec<char> = expression.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let index = error.position.saturating_sub(1).min(chars.len());
    let start = index.saturating_sub(WINDOW);
    let end = (index + WINDOW).min(chars.len());
    let prefix = if start > 0 { "…" } else { "" };
    let suffix = if end < chars.len() { "…" } else { "" };
    let shown: String = chars[start..end].iter().collect();
    let pad = " ".repeat(prefix.chars().count() + index - start);
    format!("  {prefix}{shown}{suffix}\n  {pad}^")
}

/// One `entrasync: ` message on stderr (several lines for a caret). Nothing to do if stderr is gone.
fn report(err: &mut dyn Write, text: &str) {
    if writeln!(err, "entrasync: {text}").is_err() {
        // stderr is where failures would be reported.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_eval(expression: &str, object: &str) -> (u8, String, String) {
        let args = EvalArgs {
            expression: expression.to_owned(),
            object: object.to_owned(),
            now: Some(rfc3339("2026-12-06T12:00:00Z").unwrap()),
            default_domain: Some("contoso.com".to_owned()),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = eval(&args, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn a_good_expression_prints_json_and_exits_zero() {
        assert_eq!(
            run_eval(r#"Join(".", [givenName], [surname])"#, r#"{"givenName":"Ada","surname":"Lovelace"}"#),
            (0, "\"Ada.Lovelace\"\n".to_owned(), String::new())
        );
        assert_eq!(run_eval("[missing]", "{}"), (0, "null\n".to_owned(), String::new()));
        assert_eq!(run_eval(r#"Split("a,b", ",")"#, "{}").1, "[\"a\",\"b\"]\n");
        assert_eq!(run_eval(r#"IsPresent([x])"#, "{}").1, "false\n");
    }

    #[test]
    fn a_bad_expression_shows_where_and_exits_two() {
        let (code, out, err) = run_eval(r#"Join(".", [givenName]"#, "{}");
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(err.starts_with("entrasync: the expression does not parse, at character "), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert_eq!(lines[1], r#"  Join(".", [givenName]"#);
        assert!(lines[2].trim_start().starts_with('^'), "{err}");
    }

    #[test]
    fn a_bad_object_exits_two_naming_the_problem() {
        let (code, _, err) = run_eval("[a]", "{not json");
        assert_eq!(code, 2);
        assert!(err.contains("--object is not valid JSON"), "{err}");
        let (code, _, err) = run_eval("[a]", "[1]");
        assert_eq!(code, 2);
        assert!(err.contains("must be a JSON object") && err.contains("an array"), "{err}");
    }

    #[test]
    fn an_evaluation_failure_exits_one() {
        let (code, out, err) = run_eval(r#"Item([a], 5)"#, r#"{"a":["x"]}"#);
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("failed on this object"), "{err}");
    }

    #[test]
    fn the_caret_points_at_the_position() {
        let error = ParseError { position: 3, message: "x".into() };
        assert_eq!(caret("abcdef", &error), "  abcdef\n    ^");
        let long = "a".repeat(200);
        let error = ParseError { position: 150, message: "x".into() };
        let shown = caret(&long, &error);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0].chars().position(|c| c == '…'), Some(2));
        assert_eq!(lines[1].chars().count(), 2 + 1 + 60 + 1);
    }
}
