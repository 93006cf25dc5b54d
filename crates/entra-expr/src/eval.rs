//! The evaluator (first cut: attributes, literals and Join; the rest follows).

use crate::parser::{Node};
use crate::func::Func;
use crate::{Context, EvalError, Source, Value};

pub(crate) struct Evaluator<'a, 'c> {
    pub source: &'a dyn Source,
    pub ctx: &'a Context<'c>,
}

impl Evaluator<'_, '_> {
    pub(crate) fn eval(&self, node: &Node) -> Result<Value, EvalError> {
        match node {
            Node::Attr(name) => Ok(match self.source.get(name) {
                Some(serde_json::Value::String(s)) => Value::Str(s.clone()),
                _ => Value::Null,
            }),
            Node::Str(s) => Ok(Value::Str(s.to_string())),
            Node::Num { text, .. } => Ok(Value::Str(text.to_string())),
            Node::Hex(n) => Ok(Value::Int(*n)),
            Node::Call(call) if call.func == Func::Join => {
                let sep = match call.arg(0) { Some(n) => self.eval(n)?.as_text().map(|s| s.into_owned()).unwrap_or_default(), None => String::new() };
                let mut parts = Vec::new();
                for arg in call.args.iter().skip(1).flatten() {
                    if let Some(t) = self.eval(arg)?.as_text() { if !t.is_empty() { parts.push(t.into_owned()); } }
                }
                Ok(Value::Str(parts.join(&sep)))
            }
            Node::Call(call) => Err(EvalError::Function { function: call.func.name(), message: "not implemented yet".into() }),
            _ => Err(EvalError::Function { function: "?", message: "not implemented yet".into() }),
        }
    }
}
