//! Experiments in the store: one record per experiment in a tree of its own (`experiments`,
//! keyed by the experiment id), naming its spec, its variants' sessions and the run of every
//! (variant, sample) started so far. The runs themselves are ordinary runs in ordinary
//! sessions (one session per variant), so every other reader of the store sees them; a store
//! written before experiments existed simply has an empty tree. Depends on `trace`.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, id_key};
use super::error::Result;
use super::Store;
use crate::trace::{RunId, SessionId};

const TREE: &str = "experiments";

/// One experiment: what was asked for and which runs answer it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    pub id: u64,
    /// The spec's `name`.
    pub name: String,
    /// The spec file as it was read (TOML): a resume must run the same experiment.
    pub spec: String,
    /// Where the spec was read from, as given.
    pub spec_path: String,
    pub created_at: u64,
    /// Variant names in spec order, with the session holding each variant's runs.
    pub variants: Vec<(String, SessionId)>,
    /// The run started for each (variant index, sample index); a sample redone after a crash
    /// replaces its entry.
    pub samples: Vec<SampleEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleEntry {
    pub variant: u32,
    pub sample: u32,
    pub run: RunId,
}

impl ExperimentRecord {
    /// The run of a (variant, sample), if one was started.
    pub fn run_of(&self, variant: usize, sample: usize) -> Option<RunId> {
        self.samples
            .iter()
            .find(|e| e.variant as usize == variant && e.sample as usize == sample)
            .map(|e| e.run)
    }

    /// Records `run` as the run of (variant, sample), replacing an earlier one.
    pub fn set_run(&mut self, variant: usize, sample: usize, run: RunId) {
        self.samples.retain(|e| !(e.variant as usize == variant && e.sample as usize == sample));
        self.samples.push(SampleEntry { variant: variant as u32, sample: sample as u32, run });
    }
}

impl Store {
    fn experiments_tree(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree(TREE)?)
    }

    /// Writes (replaces) an experiment's record.
    pub fn put_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        self.writable()?;
        self.bump();
        self.experiments_tree()?.insert(id_key(e.id), encode(e)?)?;
        Ok(())
    }

    pub fn experiment(&self, id: u64) -> Result<Option<ExperimentRecord>> {
        self.experiments_tree()?
            .get(id_key(id))?
            .map(|v| decode(&v, "experiments", || format!("experiment 'e{id}'")))
            .transpose()
    }

    /// Every experiment, oldest first.
    pub fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let mut out = Vec::new();
        for item in self.experiments_tree()?.iter() {
            let (k, v) = item?;
            out.push(decode(&v, "experiments", || format!("experiment key {k:?}"))?);
        }
        Ok(out)
    }

    /// Deletes an experiment's record (its runs stay, in their sessions).
    pub fn remove_experiment(&self, id: u64) -> Result<()> {
        self.writable()?;
        self.bump();
        self.experiments_tree()?.remove(id_key(id))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiments_round_trip_and_samples_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_scratch(&dir.path().join("s")).unwrap();
        assert!(store.experiments().unwrap().is_empty());
        let mut e = ExperimentRecord {
            id: store.new_id().unwrap(),
            name: "x".into(),
            spec: "name = 'x'".into(),
            spec_path: "x.toml".into(),
            created_at: 1,
            variants: vec![("a".into(), SessionId(7))],
            samples: Vec::new(),
        };
        e.set_run(0, 1, RunId(3));
        e.set_run(0, 1, RunId(4));
        e.set_run(1, 0, RunId(5));
        store.put_experiment(&e).unwrap();
        let back = store.experiment(e.id).unwrap().unwrap();
        assert_eq!(back, e);
        assert_eq!(back.run_of(0, 1), Some(RunId(4)));
        assert_eq!(back.run_of(1, 1), None);
        assert_eq!(back.samples.len(), 2);
        assert_eq!(store.experiments().unwrap().len(), 1);
        store.remove_experiment(e.id).unwrap();
        assert!(store.experiment(e.id).unwrap().is_none());
    }
}
