//! Named analysis parts kept beside a run (the answer-now probe, ...): each under its own key
//! of the analysis tree (the run's id, `/`, the name), so that adding one never changes the
//! layout of what `put_analysis` keeps; removed with the run. Depends on the store's codec.

use super::codec::{decode, encode, id_key};
use super::{Result, Store};
use crate::trace::RunId;

impl Store {
    /// Stores a named result of another analysis beside a run (`name`: e.g. "probe"), under
    /// its own key of the analysis tree, replacing the previous one; the type is the caller's.
    pub fn put_analysis_part<T: serde::Serialize>(
        &self,
        run: RunId,
        name: &str,
        value: &T,
    ) -> Result<()> {
        self.writable()?;
        self.analysis.insert(part_key(run, name), encode(value)?)?;
        Ok(())
    }

    /// What `put_analysis_part` stored for a run under `name`, if anything.
    pub fn analysis_part<T: serde::de::DeserializeOwned>(
        &self,
        run: RunId,
        name: &str,
    ) -> Result<Option<T>> {
        self.analysis
            .get(part_key(run, name))?
            .map(|v| decode(&v, "analysis", || format!("run '{run}' {name}")))
            .transpose()
    }
}

/// The key of a named analysis part: the run's id, `/`, the name.
fn part_key(run: RunId, name: &str) -> Vec<u8> {
    let mut k = id_key(run.0).to_vec();
    k.push(b'/');
    k.extend_from_slice(name.as_bytes());
    k
}
