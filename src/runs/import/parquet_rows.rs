//! Parquet datasets (how Hugging Face publishes them): rows read one at a time with the
//! `parquet` crate's record API, each turned into a JSON value and mapped like a JSONL row
//! (`dataset`). A pipe or a gzipped file is first copied to a temporary file (Parquet is read
//! from its end).

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::{Map, Value};

use super::dataset::{keeps, row_runs};
use super::{Error, Options, Progress, Result, Sink};

/// A row as a JSON object.
pub fn row_value(row: &Row) -> Value {
    let mut o = Map::new();
    for (k, f) in row.get_column_iter() {
        o.insert(k.clone(), field_value(f));
    }
    Value::Object(o)
}

fn field_value(f: &Field) -> Value {
    match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(x) => (*x).into(),
        Field::Short(x) => (*x).into(),
        Field::Int(x) => (*x).into(),
        Field::Long(x) => (*x).into(),
        Field::UByte(x) => (*x).into(),
        Field::UShort(x) => (*x).into(),
        Field::UInt(x) => (*x).into(),
        Field::ULong(x) => (*x).into(),
        Field::Float16(x) => num(f64::from(x.to_f32())),
        Field::Float(x) => num(f64::from(*x)),
        Field::Double(x) => num(*x),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => Value::String(String::from_utf8_lossy(b.data()).into_owned()),
        Field::Group(r) => row_value(r),
        Field::ListInternal(l) => Value::Array(l.elements().iter().map(field_value).collect()),
        Field::MapInternal(m) => Value::Object(
            m.entries()
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Field::Str(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, field_value(v))
                })
                .collect(),
        ),
        other => Value::String(other.to_string()),
    }
}

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Reads the rows; returns how many `--where` skipped.
pub fn read(
    input: &mut super::Input,
    opts: &Options,
    sink: &mut Sink,
    progress: &mut dyn FnMut(Progress),
) -> Result<usize> {
    let name = input.name.clone();
    let io = |source| Error::Io { path: name.clone(), source };
    let file = match input.seekable_path() {
        Some(p) => std::fs::File::open(p).map_err(io)?,
        None => {
            let mut tmp = tempfile::tempfile().map_err(io)?;
            std::io::copy(
                &mut std::io::Read::take(input.reader(), super::input::MAX_WHOLE),
                &mut tmp,
            )
            .map_err(io)?;
            tmp
        }
    };
    let reader = SerializedFileReader::new(file).map_err(|e| {
        sink.bad("", format!("not a readable Parquet file (damaged or cut short?): {e}"))
    })?;
    let total = reader.metadata().file_metadata().num_rows().max(0) as u64;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| sink.bad("", format!("not a readable Parquet file: {e}")))?;
    let (mut n, mut kept, mut skipped) = (0usize, 0usize, 0usize);
    for row in rows {
        if opts.limit.is_some_and(|l| kept >= l) {
            break;
        }
        n += 1;
        let at = format!("row {n}");
        let row = row.map_err(|e| sink.bad(&at, format!("not readable (damaged file?): {e}")))?;
        let value = row_value(&row);
        if !keeps(&value, &opts.wheres).map_err(|m| sink.bad(&at, m))? {
            skipped += 1;
            continue;
        }
        let runs = row_runs(&value, n, opts).map_err(|m| sink.bad(&at, m))?;
        sink.session(runs)?;
        kept += 1;
        if n % 64 == 0 {
            progress(Progress {
                done: n as u64,
                total: Some(total),
                rows: true,
                sessions: sink.sessions(),
            });
        }
    }
    progress(Progress {
        done: n as u64,
        total: Some(total),
        rows: true,
        sessions: sink.sessions(),
    });
    Ok(skipped)
}

/// The first row of a Parquet file as JSON (the TUI's preview), or why there is none.
pub fn first_row(path: &std::path::Path) -> std::result::Result<Option<Value>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let mut rows = reader.get_row_iter(None).map_err(|e| e.to_string())?;
    match rows.next() {
        Some(Ok(r)) => Ok(Some(row_value(&r))),
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(None),
    }
}
