//! Keys and values of the store. Keys are big-endian so that a prefix scan returns a run's
//! steps in order (`run_id ++ step_index`); values are postcard with a version byte in front,
//! so a later format can be told apart from this one.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{Error, Result};
use crate::trace::RunId;

/// Version byte in front of every value written by this build.
pub const VALUE_VERSION: u8 = 1;

pub fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// `run_id ++ index`, both big-endian: a run's entries sort by index.
pub fn step_key(run: RunId, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&run.0.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

pub fn run_prefix(run: RunId) -> [u8; 8] {
    run.0.to_be_bytes()
}

/// The run and index of a step key.
pub fn split_step_key(key: &[u8]) -> Option<(RunId, u32)> {
    let run = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let index = u32::from_be_bytes(key.get(8..12)?.try_into().ok()?);
    Some((RunId(run), index))
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![VALUE_VERSION];
    let body = postcard::to_stdvec(value).map_err(|e| Error::Corrupt {
        tree: "-",
        place: "encoding".into(),
        message: e.to_string(),
    })?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a value, naming the tree and place (run, step) when it is corrupt.
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    tree: &'static str,
    place: impl FnOnce() -> String,
) -> Result<T> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, body)) => postcard::from_bytes(body).map_err(|e| Error::Corrupt {
            tree,
            place: place(),
            message: e.to_string(),
        }),
        Some((v, _)) => Err(Error::Corrupt {
            tree,
            place: place(),
            message: format!("unknown value version {v}"),
        }),
        None => Err(Error::Corrupt { tree, place: place(), message: "empty value".into() }),
    }
}
