//! The sample sessions in `sessions/` (real runs of the demo model, JSONL exports),
//! compiled in so that a newcomer sees a real trace without a model: imported by
//! `thinkdbg --import-samples` or on first start with an empty store. Depends on the store.

use crate::store::{import, Store};

use super::error::{Error, Result};

/// (file name, JSONL text) of every sample.
pub const SAMPLES: &[(&str, &str)] = &[
    (
        "farmer-sheep-greedy-vs-sampled.jsonl",
        include_str!("../../sessions/farmer-sheep-greedy-vs-sampled.jsonl"),
    ),
    ("prime-function.jsonl", include_str!("../../sessions/prime-function.jsonl")),
    ("sky-blue.jsonl", include_str!("../../sessions/sky-blue.jsonl")),
];

/// Imports every sample; returns how many runs were added.
pub fn import_samples(store: &Store) -> Result<usize> {
    let mut runs = 0;
    for (file, text) in SAMPLES {
        let records = crate::export::jsonl::parse(text)
            .map_err(|e| Error::Sample { file: file.to_string(), msg: e.to_string() })?;
        runs += import::import(store, records)?.runs.len();
    }
    Ok(runs)
}
