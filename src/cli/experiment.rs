//! `thinkdbg experiment SPEC.toml`: run every variant of an experiment spec N times (paired
//! seeds), each sample a stored run, with a progress bar per variant; then print the report
//! (a table, or `--json` lines) and write it as Markdown or HTML. `--resume` continues the
//! newest experiment of the spec's name; `--report ID` prints a stored experiment's report;
//! `--list` lists the experiments of the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use crate::engine::source::ModelSource;
use crate::engine::{Engine, LoadOptions};
use crate::runs::experiment::export::{comparison_rows, variant_rows};
use crate::runs::experiment::runner::{self, Progress};
use crate::runs::experiment::spec::Source;
use crate::runs::experiment::{export, Report, Spec};

#[derive(Debug, Clone, Args)]
pub struct ExperimentArgs {
    /// The experiment spec (TOML; see README, Experiments).
    #[arg(value_name = "SPEC.toml", required_unless_present_any = ["report", "list"])]
    pub spec: Option<PathBuf>,
    /// Continue the newest experiment of the spec's name: complete samples are kept, the
    /// others (left recording, interrupted, failed, cancelled) are redone.
    #[arg(long, conflicts_with_all = ["report", "list"])]
    pub resume: bool,
    /// Print the report of a stored experiment (its id, e.g. e12, or its name) without running.
    #[arg(long, value_name = "ID", conflicts_with = "list")]
    pub report: Option<String>,
    /// List the store's experiments.
    #[arg(long)]
    pub list: bool,
    /// Print one JSON object per variant, then one {"comparison": …} per variant after the
    /// first.
    #[arg(long)]
    pub json: bool,
    /// Requests in flight at once against an endpoint.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub concurrency: usize,
    /// Also write the report as Markdown to this file.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// Also write the report as one HTML page (SVG charts, no script) to this file.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

impl ExperimentArgs {
    pub fn for_each_path(&mut self, f: &mut dyn FnMut(&mut PathBuf)) {
        for p in [&mut self.spec, &mut self.markdown, &mut self.html].into_iter().flatten() {
            f(p);
        }
    }
}

fn read_spec(path: &Path) -> Result<(Spec, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading experiment spec '{}'", path.display()))?;
    let spec = Spec::parse(&text).with_context(|| format!("'{}'", path.display()))?;
    Ok((spec, text))
}

pub fn run(args: &ExperimentArgs, store_flag: Option<&Path>, offline: bool) -> Result<ExitCode> {
    if args.concurrency == 0 {
        bail!("'--concurrency' must be at least 1");
    }
    if args.list {
        return list(store_flag);
    }
    let cfg = crate::analysis::AnalysisConfig::load()?;
    if let Some(id) = &args.report {
        let store = super::store_args::open(store_flag)?;
        let record = runner::find(&store, id)?;
        let spec = Spec::parse(&record.spec)
            .with_context(|| format!("the stored spec of experiment '{id}'"))?;
        let report = Report::build(&store, &record, &spec, &cfg)?;
        print_report(args, &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let path = args.spec.clone().ok_or_else(|| anyhow!("give SPEC.toml, --report ID or --list"))?;
    let (spec, text) = read_spec(&path)?;
    // The model is found (and fetched) before anything is written to the store.
    let model = match &spec.source {
        Source::Model(m) => Some(ModelSource::parse(Some(m.as_str()))?.resolve(offline)?),
        Source::Endpoint { .. } => {
            runner::endpoint(&spec).map(|e| e.check()).transpose()?;
            None
        }
    };
    let store = super::store_args::open(store_flag)?;
    let (mut record, todo) =
        runner::prepare(&store, &spec, &text, &path.display().to_string(), args.resume)?;
    let id = runner::shown_id(record.id);
    let total = spec.samples * spec.variants.len();
    errln!(
        "experiment {id} '{}': {} variants × {} samples, {} to run{}",
        spec.name,
        spec.variants.len(),
        spec.samples,
        todo.len(),
        if todo.len() < total {
            format!(" ({} done before)", total - todo.len())
        } else {
            String::new()
        }
    );
    let cancel = Arc::new(AtomicBool::new(false));
    let interrupt = super::interrupt::Interrupt::cancels(&cancel)?;
    let progress = Arc::new(Progress::new(&spec, &record, &store));
    if !todo.is_empty() {
        let bars = Bars::start(progress.clone());
        let result = match &model {
            Some(path) => {
                let dev = crate::engine::device()?;
                let (store, spec, progress, cancel, cfg) =
                    (&store, &spec, &progress, &cancel, &cfg);
                let record = &mut record;
                let todo = &todo;
                dev.with_context(move || -> Result<()> {
                    let mut engine =
                        Engine::load(path, &LoadOptions::default(), &mut |_: u64, _: u64| {})?;
                    runner::run_embedded(
                        store,
                        spec,
                        record,
                        todo,
                        &mut engine,
                        progress,
                        cancel,
                        cfg,
                    )?;
                    Ok(())
                })
            }
            None => runner::run_remote(
                &store,
                &spec,
                &mut record,
                &todo,
                args.concurrency,
                &progress,
                &cancel,
                &cfg,
            )
            .map_err(Into::into),
        };
        bars.finish();
        result?;
    }
    let failed: usize = progress.variants.iter().map(|v| v.failed.load(Ordering::Relaxed)).sum();
    if failed > 0 {
        errln!("warning: {failed} samples did not complete (see the log); 'thinkdbg experiment {} --resume' redoes them", path.display());
    }
    if interrupt.seen() {
        errln!(
            "stopped: experiment {id} is kept; 'thinkdbg experiment {} --resume' continues it",
            path.display()
        );
    }
    let report = Report::build(&store, &record, &spec, &cfg)?;
    print_report(args, &report)?;
    Ok(interrupt.exit(ExitCode::SUCCESS))
}

/// A progress bar per variant: samples done, tokens per second.
struct Bars {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bars {
    fn start(progress: Arc<Progress>) -> Bars {
        let stop = Arc::new(AtomicBool::new(false));
        let hidden = super::out::is_redirected();
        let multi = indicatif::MultiProgress::with_draw_target(if hidden {
            indicatif::ProgressDrawTarget::hidden()
        } else {
            indicatif::ProgressDrawTarget::stderr()
        });
        let style =
            indicatif::ProgressStyle::with_template("{prefix:>16} {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bars: Vec<indicatif::ProgressBar> = progress
            .variants
            .iter()
            .map(|v| {
                let b = multi.add(indicatif::ProgressBar::new(v.total as u64));
                b.set_style(style.clone());
                let name: String =
                    crate::sanitize::for_terminal(&v.name, false).chars().take(16).collect();
                b.set_prefix(name);
                b
            })
            .collect();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("thinkdbg-progress".into())
            .spawn(move || loop {
                let _drawn_by = &multi;
                let tok_s = progress.tok_s();
                for (b, v) in bars.iter().zip(&progress.variants) {
                    b.set_position(v.done.load(Ordering::Relaxed) as u64);
                    let failed = v.failed.load(Ordering::Relaxed);
                    b.set_message(format!(
                        "{} tokens{}  · {tok_s:.1} tok/s in all",
                        v.tokens.load(Ordering::Relaxed),
                        if failed > 0 { format!(", {failed} failed") } else { String::new() }
                    ));
                }
                if flag.load(Ordering::Relaxed) {
                    bars.iter().for_each(indicatif::ProgressBar::abandon);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            })
            .ok();
        Bars { stop, thread }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pad(s: &str, w: usize) -> String {
    let n = unicode_width::UnicodeWidthStr::width(s);
    format!("{s}{}", " ".repeat(w.saturating_sub(n)))
}

fn table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| unicode_width::UnicodeWidthStr::width(s.as_str()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(s, w)| pad(s, *w)).collect();
        outln!("{}", line.join("  ").trim_end());
    }
}

fn print_report(args: &ExperimentArgs, r: &Report) -> Result<()> {
    if let Some(p) = &args.markdown {
        std::fs::write(p, export::markdown(r))
            .with_context(|| format!("writing '{}'", p.display()))?;
        errln!("wrote {}", p.display());
    }
    if let Some(p) = &args.html {
        std::fs::write(p, export::html(r)).with_context(|| format!("writing '{}'", p.display()))?;
        errln!("wrote {}", p.display());
    }
    if args.json {
        for line in r.json_lines() {
            outln!("{line}");
        }
        return Ok(());
    }
    let safe = |s: &str| crate::sanitize::for_terminal(s, false).into_owned();
    outln!("experiment {} '{}' · model {}", runner::shown_id(r.id), safe(&r.name), safe(&r.model));
    if let Some(e) = &r.expect {
        outln!("expected answer: {}", safe(e));
    }
    let mut rows = vec![std::iter::once("metric".to_string())
        .chain(r.variants.iter().map(|v| safe(&v.name)))
        .collect::<Vec<_>>()];
    // The answers would stretch the table: they get a line per variant below it.
    for (label, cells) in variant_rows(r).into_iter().filter(|(l, _)| l != "answers") {
        rows.push(std::iter::once(label).chain(cells.iter().map(|c| safe(c))).collect());
    }
    table(&rows);
    for v in &r.variants {
        let shown: Vec<String> = v
            .answers
            .iter()
            .take(6)
            .map(|(a, n)| {
                let a = safe(a);
                let cut: String = a.chars().take(24).collect();
                let cut = if cut.len() < a.len() { format!("{cut}…") } else { cut };
                format!("{cut} ×{n}")
            })
            .collect();
        let more = v.answers.len().saturating_sub(6);
        outln!(
            "answers of {}: {}{}",
            safe(&v.name),
            if shown.is_empty() { "-".to_string() } else { shown.join(" · ") },
            if more > 0 { format!(" · {more} more") } else { String::new() }
        );
    }
    for c in &r.comparisons {
        outln!();
        outln!("{} against {}:", safe(&c.variant), safe(&c.against));
        let mut rows = vec![vec![
            "metric".to_string(),
            safe(&c.against),
            safe(&c.variant),
            "difference [95% interval]".to_string(),
            "exact McNemar".to_string(),
        ]];
        rows.extend(comparison_rows(c).into_iter().map(|r| r.to_vec()));
        table(&rows);
    }
    outln!();
    outln!(
        "95% intervals: Wilson for rates, Newcombe (hybrid score) for differences of rates, \
         Welch normal approximation for differences of means; * = interval leaves out zero. \
         McNemar: exact binomial test on pairs with the same seed."
    );
    Ok(())
}

fn list(store_flag: Option<&Path>) -> Result<ExitCode> {
    let store = super::store_args::open(store_flag)?;
    let all = store.experiments()?;
    if all.is_empty() {
        errln!("no experiments in this store");
    }
    for e in all {
        let done = e
            .samples
            .iter()
            .filter(|s| store.run(s.run).ok().flatten().is_some_and(|r| runner::is_complete(&r)))
            .count();
        let planned = Spec::parse(&e.spec).map(|s| s.samples * s.variants.len()).unwrap_or(0);
        let names: Vec<&str> = e.variants.iter().map(|(n, _)| n.as_str()).collect();
        outln!(
            "{}  {}  {}  {done}/{planned} samples  variants: {}",
            runner::shown_id(e.id),
            super::store_args::date(e.created_at),
            crate::sanitize::for_terminal(&e.name, false),
            crate::sanitize::for_terminal(&names.join(", "), false)
        );
    }
    Ok(ExitCode::SUCCESS)
}
