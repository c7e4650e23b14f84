//! `thinkdbg store check` and `thinkdbg store salvage --to NEW`: what a damaged store still
//! holds, and a way to get it out. Neither changes the store they read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::store_args::store_path;
use crate::store::salvage::{self, Database, Outcome, Report};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Read every run of the store (a copy of it: the store is not changed) and say which
    /// ones can be recovered, from the database or from their backups. Exit status 1 when
    /// anything is damaged.
    Check,
    /// Copy every recoverable run (from the database, else its backup) into a new store,
    /// under the same ids, and list the runs that are lost.
    Salvage {
        /// The new store: a path that does not exist yet, or an empty directory.
        #[arg(long, value_name = "NEW")]
        to: PathBuf,
    },
}

pub fn run(cmd: &StoreCommand, store_flag: Option<&Path>) -> Result<ExitCode> {
    let path = store_path(store_flag)?;
    match cmd {
        StoreCommand::Check => {
            let report = salvage::check(&path)?;
            print_report(&path, &report);
            if report.healthy() {
                outln!("every run reads whole from the database");
                Ok(ExitCode::SUCCESS)
            } else {
                outln!(
                    "{} of {} run(s) can be recovered: 'thinkdbg store salvage --to NEW' copies them into a new store",
                    report.recovered(),
                    report.runs.len()
                );
                Ok(ExitCode::from(1))
            }
        }
        StoreCommand::Salvage { to } => {
            let report = salvage::salvage(&path, to)?;
            print_report(&path, &report);
            outln!(
                "recovered {} of {} run(s) into '{}'",
                report.recovered(),
                report.runs.len(),
                to.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_report(path: &Path, report: &Report) {
    let db = match &report.database {
        Database::Whole if report.runs.iter().any(|r| matches!(r.outcome, Outcome::Backup(_))) => {
            "database opens, but lost runs or changes that their backups hold".to_string()
        }
        Database::Whole => "database reads whole".to_string(),
        Database::LogPrefix => {
            "database damaged: read without its snapshot, up to the first damaged log entry"
                .to_string()
        }
        Database::Unreadable(why) => format!("database unreadable: {why}"),
    };
    outln!("store '{}': {db}", path.display());
    outln!("backups: {} file(s)", report.backup_files);
    for b in &report.bad_backups {
        outln!("  unreadable backup {b}");
    }
    for r in &report.runs {
        let (what, why) = match &r.outcome {
            Outcome::Database => ("ok, from the database", None),
            Outcome::Backup(why) => ("recovered from its backup", Some(why)),
            Outcome::Partial(why) => ("recovered in part, as interrupted", Some(why)),
            Outcome::Lost(why) => ("LOST", Some(why)),
        };
        let backup = match r.outcome {
            Outcome::Database if !r.backup_current => " (its backup is missing or older)",
            _ => "",
        };
        let why = why.map(|w| format!(": {w}")).unwrap_or_default();
        outln!("  {:<6} {:>6} steps  {what}{why}{backup}", r.id.to_string(), r.steps);
    }
}
