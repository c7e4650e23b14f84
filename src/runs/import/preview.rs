//! What the TUI's import dialog shows before importing: the detected format and the start of
//! the file, for a dataset its first row's fields (to pick the field mapping from).

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use super::{detect, Format, Input};

/// The start of a file as the import would read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preview {
    pub format: Option<Format>,
    /// `Parquet`, `JSONL`, `gzip`, … beside the format.
    pub detail: String,
    /// A dataset's first row: each field (dotted into objects one level) and its value cut
    /// short; for other formats, the first lines of the file.
    pub rows: Vec<(String, String)>,
    /// Why there is nothing to show (no such file, unreadable).
    pub error: Option<String>,
}

/// A value in one line: text cut at `max` characters, a list as its length and first item.
pub fn short(v: &Value, max: usize) -> String {
    let cut = |s: &str| {
        let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if one.chars().count() > max {
            format!("{}…", one.chars().take(max).collect::<String>())
        } else {
            one
        }
    };
    match v {
        Value::String(s) => format!("\"{}\"", cut(s)),
        Value::Array(a) => match a.first() {
            Some(first) => format!("[{} items] {}", a.len(), short(first, max)),
            None => "[]".into(),
        },
        Value::Object(o) => {
            format!("{{{}}}", cut(&o.keys().cloned().collect::<Vec<_>>().join(", ")))
        }
        other => cut(&other.to_string()),
    }
}

fn row_fields(row: &Value) -> Vec<(String, String)> {
    let Some(o) = row.as_object() else { return vec![("row".into(), short(row, 60))] };
    let mut out = Vec::new();
    for (k, v) in o {
        match v {
            Value::Object(inner) if !inner.is_empty() && inner.len() <= 8 => {
                for (k2, v2) in inner {
                    out.push((format!("{k}.{k2}"), short(v2, 60)));
                }
            }
            _ => out.push((k.clone(), short(v, 60))),
        }
    }
    out
}

/// The preview of `path` read as `format` (detected when `None`).
pub fn preview(path: &Path, format: Option<Format>) -> Preview {
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Preview { error: Some("not a regular file".into()), ..Preview::default() },
        Err(e) => return Preview { error: Some(e.to_string()), ..Preview::default() },
    };
    let mut input = match Input::open(path) {
        Ok(i) => i,
        Err(e) => return Preview { error: Some(e.to_string()), ..Preview::default() },
    };
    let detected = detect(&input);
    let format = format.unwrap_or(detected);
    let mut detail = format!("{} KiB", meta.len().div_ceil(1024));
    if input.gzip {
        detail.push_str(", gzip");
    }
    let mut p = Preview { format: Some(format), ..Preview::default() };
    match format {
        Format::Dataset if input.is_parquet() => {
            detail.push_str(", Parquet");
            match super::parquet_rows::first_row(path) {
                Ok(Some(row)) => p.rows = row_fields(&row),
                Ok(None) => p.error = Some("no rows".into()),
                Err(e) => p.error = Some(format!("not a readable Parquet file: {e}")),
            }
        }
        Format::Dataset | Format::Openai => {
            detail.push_str(", JSON");
            let head = String::from_utf8_lossy(input.head()).into_owned();
            let first = head.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let value: Option<Value> = serde_json::from_str(first).ok().or_else(|| {
                serde_json::Deserializer::from_str(&head).into_iter().next().and_then(Result::ok)
            });
            match value {
                Some(v) => p.rows = row_fields(&v),
                None => p.error = Some("the first row is not JSON (or longer than 64 KiB)".into()),
            }
        }
        _ => {
            let mut lines = Vec::new();
            let reader = input.reader();
            let mut line = String::new();
            for n in 1..=8 {
                line.clear();
                match std::io::Read::take(&mut *reader, 4096).read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => lines.push((format!("{n}"), short(&Value::String(line.clone()), 70))),
                }
            }
            p.rows = lines;
        }
    }
    p.detail = detail;
    p
}
