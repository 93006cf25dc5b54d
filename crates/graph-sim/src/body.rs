//! Building response bodies in a `Vec<u8>`, which cannot fail: formatted text and JSON values.

use std::io::Write as _;

/// Appends formatted text (use with `format_args!`).
pub fn append(out: &mut Vec<u8>, text: std::fmt::Arguments<'_>) {
    // io::Write for Vec<u8> never returns an error.
    out.write_fmt(text).unwrap_or_default();
}

/// Appends a value as JSON.
pub fn append_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    // Only a failing writer or a failing Serialize impl can err; neither exists for a Vec and JSON data.
    serde_json::to_writer(&mut *out, value).unwrap_or_default();
}
