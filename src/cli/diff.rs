//! `thinkdbg diff RUN_A RUN_B`: two runs aligned (by tokens when they share a tokenizer, else
//! by words), coloured (`NO_COLOR` and pipes get `[-removed-]` / `{+added+}` markers), the
//! first divergence marked `▶` with both choices and their top-k lists; `--stat` prints a
//! summary with the statistics side by side instead.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use crossterm::style::{ContentStyle, Stylize};

use super::analysis::{config, run_id, use_color};
use super::out::Out;
use super::store_args::open;
use crate::compare::{compare_with, AlignBy, AlignOp, Choice, Comparison, Side};
use crate::sanitize::{for_terminal, visible_token};
use crate::trace::{Run, Step};

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The first run (A).
    pub run_a: String,
    /// The second run (B).
    pub run_b: String,
    /// A summary instead of the text: alignment, divergence, reasoning steps, answers and
    /// statistics side by side.
    #[arg(long)]
    pub stat: bool,
    /// Characters of unchanged text kept around each change (0: print everything).
    #[arg(long, default_value_t = 80, value_name = "N")]
    pub context: usize,
    /// Time budget of the alignment in milliseconds; past it the alignment is coarser.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub budget_ms: u64,
}

/// A run, its steps and its routing.
type Loaded = (Run, Vec<Step>, Vec<(u32, crate::trace::Routing)>);

pub fn run(args: &DiffArgs, store_flag: Option<&Path>) -> Result<ExitCode> {
    let cfg = config()?;
    let store = open(store_flag)?;
    let load = |text: &str| -> Result<Loaded> {
        let id = run_id(&store, text)?;
        let run = store.run(id)?.ok_or_else(|| anyhow::anyhow!("no run '{text}'"))?;
        let read = store.steps(id)?;
        for e in &read.errors {
            errln!("warning: {e}");
        }
        Ok((run, read.steps, store.routing(id)?))
    };
    let (ra, sa, rta) = load(&args.run_a)?;
    let (rb, sb, rtb) = load(&args.run_b)?;
    let c = compare_with(
        Side { run: &ra, steps: &sa, routing: &rta },
        Side { run: &rb, steps: &sb, routing: &rtb },
        &cfg,
        Duration::from_millis(args.budget_ms),
    );
    let color = use_color();
    let mut out = super::out::Out::stdout();
    header(&mut out, &ra, &sa, &rb, &sb, &c)?;
    if args.stat {
        summary(&mut out, &c, sa.len(), sb.len())?;
    } else {
        writeln!(out)?;
        text_diff(&mut out, &c, &sa, &sb, args.context, color)?;
        writeln!(out)?;
        writeln!(out)?;
        divergence(&mut out, &c)?;
        answers(&mut out, &c)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn header(
    out: &mut impl Write,
    ra: &Run,
    sa: &[Step],
    rb: &Run,
    sb: &[Step],
    c: &Comparison,
) -> Result<()> {
    for (tag, r, s) in [("a", ra, sa), ("b", rb, sb)] {
        let label = r.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default();
        writeln!(
            out,
            "{tag}: {}{}  {}  {} steps",
            r.id,
            for_terminal(&label, false),
            for_terminal(&r.model.name, false),
            s.len()
        )?;
    }
    let by = match c.by {
        AlignBy::Tokens => "aligned by tokens (same tokenizer)",
        AlignBy::Words => "aligned by words (different tokenizers)",
    };
    let budget =
        if c.budget_exceeded { "; time budget reached, alignment approximate" } else { "" };
    writeln!(out, "{by}{budget}")?;
    Ok(())
}

fn joined(steps: &[Step], r: std::ops::Range<usize>) -> String {
    steps.get(r).unwrap_or(&[]).iter().map(|s| s.text.as_str()).collect()
}

fn text_diff(
    out: &mut Out<impl Write>,
    c: &Comparison,
    sa: &[Step],
    sb: &[Step],
    context: usize,
    color: bool,
) -> Result<()> {
    let first_change = c.ops.iter().position(|o| !matches!(o, AlignOp::Equal { .. }));
    let last = c.ops.len().saturating_sub(1);
    for (k, op) in c.ops.iter().enumerate() {
        if Some(k) == first_change {
            let mark = "▶";
            if color {
                out.styled(mark, ContentStyle::new().yellow().bold())?;
            } else {
                write!(out, "{mark}")?;
            }
        }
        match op {
            AlignOp::Equal { a, .. } => {
                let text = joined(sa, a.clone());
                let n: usize = text.chars().count();
                let (head, tail) = match (k == 0, k == last) {
                    _ if context == 0 || n <= 2 * context + 20 => (n, 0),
                    (true, true) => (context, context),
                    (true, false) => (0, context),
                    (false, true) => (context, 0),
                    (false, false) => (context, context),
                };
                if head + tail >= n {
                    write!(out, "{}", for_terminal(&text, true))?;
                } else {
                    let h: String = text.chars().take(head).collect();
                    let t: String = text.chars().skip(n - tail).collect();
                    let skipped = format!("…[{} equal steps]…", a.len());
                    write!(out, "{}", for_terminal(&h, true))?;
                    if color {
                        out.styled(&skipped, ContentStyle::new().dim())?;
                    } else {
                        write!(out, "{skipped}")?;
                    }
                    write!(out, "{}", for_terminal(&t, true))?;
                }
            }
            _ => {
                let (del, ins) = (joined(sa, op.a()), joined(sb, op.b()));
                if !del.is_empty() {
                    let d = for_terminal(&del, true);
                    if color {
                        out.styled(&d, ContentStyle::new().red().crossed_out())?;
                    } else {
                        write!(out, "[-{d}-]")?;
                    }
                }
                if !ins.is_empty() {
                    let i = for_terminal(&ins, true);
                    if color {
                        out.styled(&i, ContentStyle::new().green())?;
                    } else {
                        write!(out, "{{+{i}+}}")?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn describe(ch: &Option<Choice>) -> String {
    match ch {
        None => "(ended)".into(),
        Some(c) => {
            let top: Vec<String> = c
                .top
                .iter()
                .take(5)
                .map(|t| format!("'{}' {:.3}", visible_token(&t.text), f64::from(t.logprob).exp()))
                .collect();
            format!(
                "step {} '{}' p={:.3}{}",
                c.step,
                visible_token(&c.text),
                f64::from(c.logprob).exp(),
                if top.is_empty() { String::new() } else { format!("  top: {}", top.join(", ")) }
            )
        }
    }
}

fn divergence(out: &mut impl Write, c: &Comparison) -> Result<()> {
    match &c.first_divergence {
        None => writeln!(out, "no divergence: the runs are the same")?,
        Some(d) => {
            writeln!(out, "first divergence ▶ at a step {}, b step {}", d.a_step, d.b_step)?;
            writeln!(out, "  a: {}", describe(&d.a))?;
            writeln!(out, "  b: {}", describe(&d.b))?;
        }
    }
    Ok(())
}

fn answers(out: &mut impl Write, c: &Comparison) -> Result<()> {
    let show = |a: &Option<String>| {
        a.as_ref().map_or("(none stated)".to_string(), |s| format!("'{}'", for_terminal(s, false)))
    };
    let verdict = match c.answers_agree {
        Some(true) => "agree",
        Some(false) => "differ",
        None => "cannot tell",
    };
    writeln!(out, "answers: a {}, b {}: {verdict}", show(&c.answers.0), show(&c.answers.1))?;
    Ok(())
}

fn summary(out: &mut impl Write, c: &Comparison, na: usize, nb: usize) -> Result<()> {
    let (ea, eb) = c.equal_steps();
    let pct = |x: usize, n: usize| if n == 0 { 100.0 } else { 100.0 * x as f64 / n as f64 };
    let count = |f: fn(&AlignOp) -> bool| c.ops.iter().filter(|o| f(o)).count();
    writeln!(
        out,
        "equal: {ea} of {na} steps in a ({:.1}%), {eb} of {nb} in b ({:.1}%); changes: {} replaced, {} only in a, {} only in b",
        pct(ea, na),
        pct(eb, nb),
        count(|o| matches!(o, AlignOp::Replace { .. })),
        count(|o| matches!(o, AlignOp::Delete { .. })),
        count(|o| matches!(o, AlignOp::Insert { .. })),
    )?;
    divergence(out, c)?;
    let same = c.steps.iter().filter(|p| p.same).count();
    let changed = c.steps.iter().filter(|p| !p.same && p.a.is_some() && p.b.is_some()).count();
    let only_a = c.steps.iter().filter(|p| p.b.is_none()).count();
    let only_b = c.steps.iter().filter(|p| p.a.is_none()).count();
    writeln!(
        out,
        "reasoning steps: {same} same, {changed} changed, {only_a} only in a, {only_b} only in b"
    )?;
    answers(out, c)?;
    writeln!(out, "{:<24} {:<28} b", "", "a")?;
    let (la, lb) = (super::stats::lines(&c.stats.0), super::stats::lines(&c.stats.1));
    for ((k, va), (_, vb)) in la.iter().zip(&lb) {
        writeln!(out, "{k:<24} {va:<28} {vb}")?;
    }
    if let Some(moe) = &c.moe {
        let mut layers: Vec<_> = moe.iter().collect();
        layers.sort_by(|x, y| y.distance.total_cmp(&x.distance));
        writeln!(out, "expert usage, layers that differ most (total variation distance):")?;
        for l in layers.iter().take(5) {
            writeln!(out, "  layer {:>3}  {:.3}", l.layer, l.distance)?;
        }
    }
    Ok(())
}
