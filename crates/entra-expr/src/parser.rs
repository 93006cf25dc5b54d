//! Lexer and parser for the grammar of reference §2.3.

use std::fmt;

use crate::func::{suggest, Constant, Func, CONSTANTS, FUNCTIONS};
use crate::regex_net::NetRegex;

/// The longest expression accepted, in characters (F+, CA, EB, KI).
pub const MAX_LENGTH: usize = 10_000;

/// How deeply calls and parentheses may nest (keeps parsing and evaluation off the end of the stack).
const MAX_DEPTH: usize = 50;

/// An error in an expression's text: where (1-based character) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based character column (characters, not bytes; a newline counts as one character).
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}

fn error<T>(position: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { position, message: message.into() })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A parsed expression node (reference §8).
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Attr(Box<str>),
    Str(Box<str>),
    /// A number literal: a string constant (G-AMS) that is also read as a number where one is needed.
    Num {
        text: Box<str>,
        int: Option<i64>,
    },
    Hex(i64),
    Const(Constant),
    Call(Box<Call>),
    Cmp(Box<(Node, CmpOp, Node)>),
    Concat(Vec<Node>),
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub func: Func,
    /// Positional arguments; `None` is an empty slot (parameter not provided).
    pub args: Vec<Option<Node>>,
    /// Replace's mode and, when the pattern is a string literal, its regex compiled at parse time.
    pub replace: Option<ReplaceSpec>,
}

impl Call {
    pub(crate) fn arg(&self, index: usize) -> Option<&Node> {
        self.args.get(index).and_then(Option::as_ref)
    }
}

/// Replace's modes (reference §3.1), chosen by which arguments are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplaceMode {
    /// oldValue + replacementValue: every ordinal occurrence.
    Ordinal,
    /// oldValue + template: oldValue in the template is replaced with the source.
    Template,
    /// regexPattern + replacementValue: every match.
    Regex,
    /// regexPattern + regexGroupName + replacementValue: the group's span in every match (A9).
    RegexGroup,
    /// regexPattern + regexGroupName + replacementAttributeName: F's reading (A8).
    RegexGroupFromAttribute,
}

#[derive(Debug, Clone)]
pub(crate) struct ReplaceSpec {
    pub mode: ReplaceMode,
    pub regex: Option<NetRegex>,
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Amp,
    Cmp(CmpOp),
    Attr(String),
    Str(String),
    Num(String),
    Hex(i64),
    Ident(String),
    /// A `]` without its `[`: a token so the parser can say what it expected instead.
    StrayBracket,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "'('".to_owned(),
            Tok::RParen => "')'".to_owned(),
            Tok::Comma => "','".to_owned(),
            Tok::Amp => "'&'".to_owned(),
            Tok::Cmp(op) => format!("'{}'", op.symbol()),
            Tok::Attr(name) => format!("the attribute [{}]", shorten(name)),
            Tok::Str(s) => format!("the string \"{}\"", shorten(s)),
            Tok::Num(n) => format!("the number {}", shorten(n)),
            Tok::Hex(_) => "a hex number".to_owned(),
            Tok::Ident(name) => format!("'{}'", shorten(name)),
            Tok::StrayBracket => "']'".to_owned(),
            Tok::End => "the end of the expression".to_owned(),
        }
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 30 {
        let head: String = text.chars().take(27).collect();
        format!("{head}...")
    } else {
        text.to_owned()
    }
}

struct Token {
    tok: Tok,
    /// 1-based character position of the token's first character.
    pos: usize,
}

fn lex(chars: &[char]) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                i += 1;
                continue;
            }
            '(' => tokens.push(Token { tok: Tok::LParen, pos }),
            ')' => tokens.push(Token { tok: Tok::RParen, pos }),
            ',' => tokens.push(Token { tok: Tok::Comma, pos }),
            '=' => tokens.push(Token { tok: Tok::Cmp(CmpOp::Eq), pos }),
            '<' => {
                let op = match chars.get(i + 1) {
                    Some('>') => CmpOp::Ne,
                    Some('=') => CmpOp::Le,
                    _ => CmpOp::Lt,
                };
                if op != CmpOp::Lt {
                    i += 1;
                }
                tokens.push(Token { tok: Tok::Cmp(op), pos });
            }
            '>' => {
                let op = if chars.get(i + 1) == Some(&'=') {
                    i += 1;
                    CmpOp::Ge
                } else {
                    CmpOp::Gt
                };
                tokens.push(Token { tok: Tok::Cmp(op), pos });
            }
            '&' => {
                let is_hex = matches!(chars.get(i + 1), Some('H' | 'h'))
                    && chars.get(i + 2).is_some_and(char::is_ascii_hexdigit);
                if is_hex {
                    let start = i + 2;
                    let mut end = start;
                    while end < chars.len() && chars[end].is_ascii_hexdigit() {
                        end += 1;
                    }
                    let digits: String = chars[start..end].iter().collect();
                    let value =
                        u64::from_str_radix(&digits, 16).ok().and_then(|v| i64::try_from(v).ok()).ok_or_else(|| {
                            ParseError {
                                position: pos,
                                message: format!("the hex number &H{digits} is too large (at most &H7FFFFFFFFFFFFFFF)"),
                            }
                        })?;
                    tokens.push(Token { tok: Tok::Hex(value), pos });
                    i = end;
                    continue;
                }
                tokens.push(Token { tok: Tok::Amp, pos });
            }
            '[' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != ']' {
                    end += 1;
                }
                if end >= chars.len() {
                    return error(pos, "the attribute name that starts here is never closed: add a ']'");
                }
                let name: String = chars[start..end].iter().collect();
                if name.trim().is_empty() {
                    return error(pos, "an attribute reference needs a name between '[' and ']', e.g. [mail]");
                }
                tokens.push(Token { tok: Tok::Attr(name), pos });
                i = end + 1;
                continue;
            }
            '"' => {
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return error(pos, "the string that starts here is never closed: add a closing '\"'");
                        }
                        Some('"') => break,
                        // A2: \\ is \, \" is ", any other \x stays \x.
                        Some('\\') => match chars.get(j + 1) {
                            Some(&next @ ('"' | '\\')) => {
                                text.push(next);
                                j += 2;
                            }
                            _ => {
                                text.push('\\');
                                j += 1;
                            }
                        },
                        Some(&other) => {
                            text.push(other);
                            j += 1;
                        }
                    }
                }
                tokens.push(Token { tok: Tok::Str(text), pos });
                i = j + 1;
                continue;
            }
            '-' | '0'..='9' => {
                let mut j = i;
                if c == '-' {
                    j += 1;
                    if !chars.get(j).is_some_and(char::is_ascii_digit) {
                        return error(
                            pos,
                            "'-' must be followed by a digit (a negative number such as -10); there is no subtraction",
                        );
                    }
                }
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                if chars.get(j) == Some(&'.') {
                    if !chars.get(j + 1).is_some_and(char::is_ascii_digit) {
                        return error(j + 1, "a decimal point must be followed by digits, e.g. 42568.75");
                    }
                    j += 1;
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                }
                if chars.get(j).is_some_and(|c| c.is_alphabetic() || *c == '_') {
                    return error(j + 1, "a number cannot run into a name: put a ',' or a space after the number");
                }
                tokens.push(Token { tok: Tok::Num(chars[i..j].iter().collect()), pos });
                i = j;
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                tokens.push(Token { tok: Tok::Ident(chars[i..j].iter().collect()), pos });
                i = j;
                continue;
            }
            ']' => tokens.push(Token { tok: Tok::StrayBracket, pos }),
            '\'' => {
                return error(pos, "strings use double quotes (\"text\"), not single quotes");
            }
            other => {
                return error(
                    pos,
                    format!(
                        "unexpected character '{}': expected a function call, an [attribute], a \"string\" or a number",
                        other.escape_default()
                    ),
                );
            }
        }
        i += 1;
    }
    tokens.push(Token { tok: Tok::End, pos: chars.len() + 1 });
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------
// Parser

pub(crate) fn parse(text: &str) -> Result<Node, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_LENGTH {
        return error(
            MAX_LENGTH + 1,
            format!("the expression is {} characters long; the limit is {} characters", chars.len(), MAX_LENGTH),
        );
    }
    let tokens = lex(&chars)?;
    if tokens.len() == 1 {
        return error(1, "the expression is empty: write a function call such as Join(\" \", [givenName], [surname])");
    }
    let mut parser = Parser { tokens, at: 0, depth: 0 };
    let node = parser.expr(None)?;
    let next = parser.peek();
    if next.tok != Tok::End {
        let hint = match next.tok {
            Tok::RParen => " (one ')' too many?)",
            Tok::Comma => " (arguments are only allowed inside a function call)",
            _ => " (only one expression is allowed; join values with Join(...) or '&')",
        };
        return error(next.pos, format!("unexpected {} after the complete expression{}", next.tok.describe(), hint));
    }
    Ok(node)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// Where an expression sits, for messages: the function whose argument it is.
type Within = Option<&'static str>;

impl Parser {
    fn peek(&self) -> &Token {
        // `lex` always ends the list with End and the parser never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> &Token {
        let index = self.at.min(self.tokens.len() - 1);
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        &self.tokens[index]
    }

    fn expr(&mut self, within: Within) -> Result<Node, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return error(self.peek().pos, format!("the expression nests more than {MAX_DEPTH} levels deep"));
        }
        let left = self.concat(within)?;
        let result = if let Tok::Cmp(op) = self.peek().tok {
            self.next();
            let right = self.concat(within)?;
            if let Tok::Cmp(second) = self.peek().tok {
                return error(
                    self.peek().pos,
                    format!(
                        "a comparison cannot be followed by another ('{}'): there is no AND/OR either; nest IIF calls instead",
                        second.symbol()
                    ),
                );
            }
            Node::Cmp(Box::new((left, op, right)))
        } else {
            left
        };
        self.depth -= 1;
        Ok(result)
    }

    fn concat(&mut self, within: Within) -> Result<Node, ParseError> {
        let first = self.primary(within)?;
        if self.peek().tok != Tok::Amp {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.peek().tok == Tok::Amp {
            self.next();
            parts.push(self.primary(within)?);
        }
        Ok(Node::Concat(parts))
    }

    fn primary(&mut self, within: Within) -> Result<Node, ParseError> {
        let token = self.next();
        let pos = token.pos;
        match token.tok.clone() {
            Tok::Attr(name) => Ok(Node::Attr(name.into_boxed_str())),
            Tok::Str(s) => Ok(Node::Str(s.into_boxed_str())),
            Tok::Num(text) => {
                let int = text.parse::<i64>().ok();
                Ok(Node::Num { text: text.into_boxed_str(), int })
            }
            Tok::Hex(value) => Ok(Node::Hex(value)),
            Tok::Ident(name) => {
                if self.peek().tok == Tok::LParen {
                    self.call(&name, pos)
                } else {
                    self.constant(&name, pos)
                }
            }
            Tok::LParen => {
                let inner = self.expr(within)?;
                let close = self.next();
                if close.tok != Tok::RParen {
                    return error(
                        close.pos,
                        format!("expected ')' to close the '(' at character {pos}, found {}", close.tok.describe()),
                    );
                }
                Ok(inner)
            }
            other => {
                let place = match within {
                    Some(name) => format!(" in an argument of {name}"),
                    None => String::new(),
                };
                error(
                    pos,
                    format!(
                        "expected a function call, an [attribute], a \"string\" or a number{place}, found {}",
                        other.describe()
                    ),
                )
            }
        }
    }

    fn constant(&mut self, name: &str, pos: usize) -> Result<Node, ParseError> {
        if let Some(constant) = Constant::lookup(name) {
            return Ok(Node::Const(constant));
        }
        if let Some(info) = Func::lookup(name) {
            return error(
                pos,
                format!("{} is a function: call it with parentheses, e.g. {}", info.name, info.signature),
            );
        }
        let mut message = format!(
            "unknown name '{name}': attribute names go in square brackets ([{name}]) and text in double quotes (\"{name}\")"
        );
        let candidates = CONSTANTS.iter().map(|(_, n)| *n).chain(FUNCTIONS.iter().map(|info| info.name));
        if let Some(best) = suggest(name, candidates) {
            message.push_str(&format!("; did you mean {best}?"));
        }
        error(pos, message)
    }

    fn call(&mut self, name: &str, pos: usize) -> Result<Node, ParseError> {
        let Some(info) = Func::lookup(name) else {
            let mut message = format!("unknown function '{name}'");
            if let Some(best) = suggest(name, FUNCTIONS.iter().map(|info| info.name)) {
                message.push_str(&format!("; did you mean {best}?"));
            } else {
                message.push_str("; see docs/mappings.md for the functions there are");
            }
            return error(pos, message);
        };
        self.next(); // '('
        let mut args: Vec<Option<Node>> = Vec::new();
        let mut arg_positions: Vec<usize> = Vec::new();
        if self.peek().tok == Tok::RParen {
            self.next();
        } else {
            loop {
                let slot_pos = self.peek().pos;
                arg_positions.push(slot_pos);
                if matches!(self.peek().tok, Tok::Comma | Tok::RParen) {
                    args.push(None);
                } else {
                    args.push(Some(self.expr(Some(info.name))?));
                }
                let sep = self.next();
                match sep.tok {
                    Tok::Comma => {}
                    Tok::RParen => break,
                    Tok::End => {
                        return error(
                            sep.pos,
                            format!(
                                "the call of {} that starts at character {pos} is never closed: add a ')'",
                                info.name
                            ),
                        );
                    }
                    ref other => {
                        return error(
                            sep.pos,
                            format!(
                                "expected ',' or ')' after an argument of {}, found {}",
                                info.name,
                                other.describe()
                            ),
                        );
                    }
                }
            }
        }
        let count = args.len();
        let too_few = count < info.min;
        let too_many = info.max.is_some_and(|max| count > max);
        if too_few || too_many {
            let expected = match info.max {
                Some(max) if max == info.min => format!("{max}"),
                Some(max) => format!("{} to {max}", info.min),
                None => format!("at least {}", info.min),
            };
            let noun = if expected == "1" { "argument" } else { "arguments" };
            return error(pos, format!("{} takes {expected} {noun}, found {count}: {}", info.name, info.signature));
        }
        if info.func == Func::Switch && !count.is_multiple_of(2) {
            return error(
                pos,
                format!(
                    "Switch needs its keys and values in pairs (an even number of arguments), found {count}: {}",
                    info.signature
                ),
            );
        }
        let mut call = Call { func: info.func, args, replace: None };
        if info.func == Func::Replace {
            call.replace = Some(replace_spec(&call, pos, &arg_positions)?);
        }
        Ok(Node::Call(Box::new(call)))
    }
}

/// Picks Replace's mode from the arguments given (§3.1) and compiles a literal pattern.
fn replace_spec(call: &Call, pos: usize, positions: &[usize]) -> Result<ReplaceSpec, ParseError> {
    let has = |i: usize| call.arg(i).is_some();
    let mode = if has(2) {
        if has(3) && has(5) && !has(4) {
            ReplaceMode::RegexGroupFromAttribute
        } else if has(3) && has(4) {
            ReplaceMode::RegexGroup
        } else if has(4) {
            ReplaceMode::Regex
        } else if has(3) {
            return error(
                pos,
                "Replace with regexPattern and regexGroupName needs replacementValue (5th argument) or replacementAttributeName (6th)",
            );
        } else {
            return error(pos, "Replace with regexPattern needs replacementValue (5th argument)");
        }
    } else if has(1) {
        if has(4) {
            ReplaceMode::Ordinal
        } else if has(6) {
            ReplaceMode::Template
        } else {
            return error(pos, "Replace with oldValue needs replacementValue (5th argument) or template (7th)");
        }
    } else {
        return error(
            pos,
            "Replace needs oldValue (2nd argument) or regexPattern (3rd); e.g. Replace([mail], \"@old.com\", , , \"@new.com\", , )",
        );
    };
    let regex = match call.arg(2) {
        Some(Node::Str(pattern)) => {
            let at = positions.get(2).copied().unwrap_or(pos);
            Some(NetRegex::new(pattern).map_err(|message| ParseError {
                position: at,
                message: format!("Replace: the regular expression is not valid: {message}"),
            })?)
        }
        _ => None,
    };
    Ok(ReplaceSpec { mode, regex })
}

/// Attribute names referenced by a node, in order of first appearance.
pub(crate) fn collect_attributes<'a>(node: &'a Node, out: &mut Vec<&'a str>) {
    match node {
        Node::Attr(name) => {
            if !out.contains(&&**name) {
                out.push(name);
            }
        }
        Node::Call(call) => {
            for arg in call.args.iter().flatten() {
                collect_attributes(arg, out);
            }
        }
        Node::Cmp(cmp) => {
            collect_attributes(&cmp.0, out);
            collect_attributes(&cmp.2, out);
        }
        Node::Concat(parts) => {
            for part in parts {
                collect_attributes(part, out);
            }
        }
        Node::Str(_) | Node::Num { .. } | Node::Hex(_) | Node::Const(_) => {}
    }
}

pub(crate) fn is_deterministic(node: &Node) -> bool {
    match node {
        Node::Call(call) => call.func.is_deterministic() && call.args.iter().flatten().all(is_deterministic),
        Node::Cmp(cmp) => is_deterministic(&cmp.0) && is_deterministic(&cmp.2),
        Node::Concat(parts) => parts.iter().all(is_deterministic),
        Node::Attr(_) | Node::Str(_) | Node::Num { .. } | Node::Hex(_) | Node::Const(_) => true,
    }
}
