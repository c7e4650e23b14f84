//! `thinkdbg diff RUN_A RUN_B`: how the runs are related and what differs before their first
//! token (prompt as a word diff, system message, sampler, model, source), then the two runs
//! aligned (a fork or resampled child position by position up to its fork step, else by
//! tokens when they share a tokenizer, else by words), coloured (`NO_COLOR` and pipes get
//! `[-removed-]` / `{+added+}` markers), the first divergence marked `▶` with both choices,
//! their top-k lists and a forced token's label, and both final answers; `--stat` prints a
//! summary with the statistics side by side instead, `--steps` the step map of the reasoning
//! steps, `--json` one JSON object.

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
use crate::compare::{
    compare_with, forced_label, AlignBy, AlignOp, Change, Choice, Comparison, Relation, Side,
    StepInfo,
};
use crate::sanitize::{for_terminal, json_line, visible_token};
use crate::trace::{Run, Step};

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The first run (A).
    pub run_a: String,
    /// The second run (B).
    pub run_b: String,
    /// A summary instead of the text: alignment, divergence, reasoning steps, answers and
    /// statistics side by side.
    #[arg(long, conflicts_with_all = ["steps", "json"])]
    pub stat: bool,
    /// The step map instead of the text: both runs' reasoning steps aligned by content
    /// (matched side by side with their similarity, steps only one run took), each with its
    /// flags (↩ backtrack, 文 language switch, ? low confidence, ⟳ loop) and mean confidence.
    #[arg(long, conflicts_with = "json")]
    pub steps: bool,
    /// One JSON object: first_divergence, prompt_differs, settings_differ, answers, steps
    /// (the step map), stats and more.
    #[arg(long)]
    pub json: bool,
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
    let mut out = super::out::Out::stdout();
    if args.json {
        writeln!(out, "{}", json_line(&json(&ra, &sa, &rb, &sb, &c)?)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let color = use_color();
    header(&mut out, &ra, &sa, &rb, &sb, &c)?;
    before_first_token(&mut out, &c, color)?;
    if args.stat {
        summary(&mut out, &c, &sa, &sb)?;
    } else if args.steps {
        step_map(&mut out, &c, &sa, &sb, color)?;
        answers(&mut out, &c)?;
    } else {
        writeln!(out)?;
        text_diff(&mut out, &c, &sa, &sb, args.context, color)?;
        writeln!(out)?;
        writeln!(out)?;
        divergence(&mut out, &c, &sa, &sb)?;
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
    let by = match c.relation.replayed_prefix() {
        Some(at) if at > 0 => format!("position by position up to step {at}, then {by}"),
        _ => by.to_string(),
    };
    let budget =
        if c.budget_exceeded { "; time budget reached, alignment approximate" } else { "" };
    writeln!(out, "{}; {by}{budget}", c.relation.describe())?;
    Ok(())
}

/// A word diff, coloured or with `[-removed-]` / `{+added+}` markers.
fn word_diff(out: &mut Out<impl Write>, parts: &[(Change, String)], color: bool) -> Result<()> {
    for (k, text) in parts {
        let t = for_terminal(text, true);
        match (k, color) {
            (Change::Same, _) => write!(out, "{t}")?,
            (Change::Removed, true) => out.styled(&t, ContentStyle::new().red().crossed_out())?,
            (Change::Added, true) => out.styled(&t, ContentStyle::new().green())?,
            (Change::Removed, false) => write!(out, "[-{t}-]")?,
            (Change::Added, false) => write!(out, "{{+{t}+}}")?,
        }
    }
    Ok(())
}

/// What differs before the first token: prompt, system message, settings, model, source.
fn before_first_token(out: &mut Out<impl Write>, c: &Comparison, color: bool) -> Result<()> {
    let s = &c.setup;
    if s.same() {
        writeln!(out, "before the first token: same prompt, system message, sampler and model")?;
        return Ok(());
    }
    writeln!(out, "before the first token:")?;
    if s.prompt_differs {
        write!(out, "  prompt differs: ")?;
        word_diff(out, &s.prompt, color)?;
        writeln!(out)?;
    } else {
        writeln!(out, "  prompt: same")?;
    }
    if s.system_differs {
        write!(out, "  system message differs: ")?;
        word_diff(out, &s.system, color)?;
        writeln!(out)?;
    }
    for st in &s.settings {
        let v = |x: &str| {
            if x.is_empty() {
                "(none)".to_string()
            } else {
                for_terminal(x, false).into_owned()
            }
        };
        writeln!(out, "  {}: {} → {}", st.name, v(&st.a), v(&st.b))?;
    }
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

fn divergence(out: &mut impl Write, c: &Comparison, sa: &[Step], sb: &[Step]) -> Result<()> {
    match &c.first_divergence {
        None => writeln!(out, "no divergence: the runs are the same")?,
        Some(d) => {
            writeln!(out, "first divergence ▶ at a step {}, b step {}", d.a_step, d.b_step)?;
            let child_is_b = matches!(c.relation, Relation::Fork { child_is_b: true, .. });
            let forced = |is_b: bool| -> String {
                let step = if is_b { sb.get(d.b_step) } else { sa.get(d.a_step) };
                match step {
                    Some(s) if d.forced && is_b == child_is_b => format!("  ({})", forced_label(s)),
                    _ => String::new(),
                }
            };
            writeln!(out, "  a: {}{}", describe(&d.a), forced(false))?;
            writeln!(out, "  b: {}{}", describe(&d.b), forced(true))?;
        }
    }
    Ok(())
}

fn answers(out: &mut impl Write, c: &Comparison) -> Result<()> {
    let show = |a: &Option<crate::analysis::answer::Answer>| {
        a.as_ref()
            .map_or("(none found)".to_string(), |s| format!("'{}'", for_terminal(&s.value, false)))
    };
    let kind = |a: &Option<crate::analysis::answer::Answer>| {
        a.as_ref().map_or("-".to_string(), |s| s.kind.as_str().replace('_', "/"))
    };
    let verdict = match c.answers_agree {
        Some(true) => "agree",
        Some(false) => "differ",
        None => "cannot tell",
    };
    writeln!(
        out,
        "answers: a {}, b {}: {verdict} (found as {} / {})",
        show(&c.answers.0),
        show(&c.answers.1),
        kind(&c.answers.0),
        kind(&c.answers.1)
    )?;
    Ok(())
}

/// A reasoning step as a table cell: index, token range, flags, confidence and its text's
/// start, `width` columns.
fn step_cell(info: Option<&StepInfo>, steps: &[Step], idx: Option<usize>, width: usize) -> String {
    let (Some(st), Some(i)) = (info, idx) else { return " ".repeat(width) };
    let flags: String = st.flags.iter().map(|f| f.symbol()).collect();
    let conf = st.confidence.map_or("  -".into(), |p| format!("{:>3.0}%", p * 100.0));
    let text: String = steps
        .get(st.span.clone())
        .unwrap_or(&[])
        .iter()
        .map(|s| s.text.as_str())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let head = format!("#{i:<3} {:>5}–{:<5} {flags:<2} {conf} ", st.span.start, st.span.end);
    let room = width.saturating_sub(unicode_width::UnicodeWidthStr::width(head.as_str()));
    let mut body = String::new();
    let mut used = 0;
    for ch in for_terminal(&text, false).chars() {
        let w = unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
        if used + w > room {
            break;
        }
        body.push(ch);
        used += w;
    }
    format!("{head}{body}{}", " ".repeat(room - used))
}

/// The step map: matched steps side by side, steps only one run took.
fn step_map(
    out: &mut Out<impl Write>,
    c: &Comparison,
    sa: &[Step],
    sb: &[Step],
    color: bool,
) -> Result<()> {
    let (same, changed, only_a, only_b) = c.step_counts();
    writeln!(
        out,
        "step map: {same} same, {changed} changed, {only_a} only in a, {only_b} only in b \
         (↩ backtrack, 文 language switch, ? low confidence, ⟳ loop; % mean confidence)"
    )?;
    const W: usize = 58;
    writeln!(out, "  a{}  sim   b", " ".repeat(W - 1))?;
    for m in &c.steps {
        let ca = step_cell(m.a.and_then(|i| c.step_info.0.get(i)), sa, m.a, W);
        let cb = step_cell(m.b.and_then(|i| c.step_info.1.get(i)), sb, m.b, W);
        let (mark, sim) = match (m.a, m.b) {
            (Some(_), Some(_)) if m.same() => ("=", "1.00".to_string()),
            (Some(_), Some(_)) => ("~", format!("{:.2}", m.similarity)),
            (Some(_), None) => ("-", "    ".into()),
            _ => ("+", "    ".into()),
        };
        let line = format!("{mark} {ca}  {sim}  {}", cb.trim_end());
        match (color, mark) {
            (true, "-") => out.styled(&line, ContentStyle::new().red())?,
            (true, "+") => out.styled(&line, ContentStyle::new().green())?,
            (true, "~") => out.styled(&line, ContentStyle::new().yellow())?,
            _ => write!(out, "{line}")?,
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `diff --json`: one object.
fn json(ra: &Run, sa: &[Step], rb: &Run, sb: &[Step], c: &Comparison) -> Result<serde_json::Value> {
    use serde_json::{json, Value};
    let run = |r: &Run, s: &[Step]| json!({"run": r.id.to_string(), "label": r.label, "model": r.model.name, "steps": s.len()});
    let first = c.first_divergence.as_ref().map(|d| {
        let tok = |ch: &Option<Choice>| ch.as_ref().map(|x| x.text.clone());
        let lp = |ch: &Option<Choice>| {
            ch.as_ref().and_then(|x| serde_json::Number::from_f64(f64::from(x.logprob)))
        };
        let rank = |ch: &Option<Choice>| ch.as_ref().and_then(|x| x.rank);
        json!({
            "a_step": d.a_step, "b_step": d.b_step, "a_token": tok(&d.a), "b_token": tok(&d.b),
            "forced": d.forced, "a_logprob": lp(&d.a), "b_logprob": lp(&d.b),
            "a_rank": rank(&d.a), "b_rank": rank(&d.b),
        })
    });
    let (relation, at) = match c.relation {
        Relation::Unrelated => ("unrelated", None),
        Relation::Fork { at, .. } => ("fork", Some(at)),
        Relation::Resample { at, .. } => ("resample", Some(at)),
        Relation::Edit { .. } => ("edit", None),
        Relation::Scored { .. } => ("scored", None),
    };
    let diff = |parts: &[(Change, String)]| -> Value {
        parts.iter().map(|(k, t)| json!({"change": k.as_str(), "text": t})).collect()
    };
    let answer = |a: &Option<crate::analysis::answer::Answer>| a.as_ref().map(|x| x.value.clone());
    let kind = |a: &Option<crate::analysis::answer::Answer>| a.as_ref().map(|x| x.kind.as_str());
    let steps: Vec<Value> = c
        .steps
        .iter()
        .map(|m| {
            let (ia, ib) =
                (m.a.and_then(|i| c.step_info.0.get(i)), m.b.and_then(|i| c.step_info.1.get(i)));
            let span = |x: Option<&StepInfo>| x.map(|s| [s.span.start, s.span.end]);
            let flags = |x: Option<&StepInfo>| {
                x.map(|s| s.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>())
            };
            let conf = |x: Option<&StepInfo>| x.and_then(|s| s.confidence);
            json!({
                "a": span(ia), "b": span(ib), "similarity": (m.similarity * 1000.0).round() / 1000.0,
                "a_flags": flags(ia), "b_flags": flags(ib),
                "a_confidence": conf(ia), "b_confidence": conf(ib),
            })
        })
        .collect();
    let settings: Vec<Value> =
        c.setup.settings.iter().map(|s| json!({"name": s.name, "a": s.a, "b": s.b})).collect();
    Ok(json!({
        "a": run(ra, sa),
        "b": run(rb, sb),
        "relation": relation,
        "relation_at": at,
        "aligned_by": match c.by { AlignBy::Tokens => "tokens", AlignBy::Words => "words" },
        "budget_exceeded": c.budget_exceeded,
        "first_divergence": first,
        "divergences": c.divergences().len(),
        "prompt_differs": c.setup.prompt_differs,
        "prompt_diff": diff(&c.setup.prompt),
        "system_differs": c.setup.system_differs,
        "settings_differ": c.setup.settings_differ(),
        "settings": settings,
        "answers": {
            "a": answer(&c.answers.0), "b": answer(&c.answers.1), "agree": c.answers_agree,
            "a_kind": kind(&c.answers.0), "b_kind": kind(&c.answers.1),
        },
        "steps": steps,
        "stats": {"a": serde_json::to_value(&c.stats.0)?, "b": serde_json::to_value(&c.stats.1)?},
    }))
}

fn summary(out: &mut impl Write, c: &Comparison, sa: &[Step], sb: &[Step]) -> Result<()> {
    let (na, nb) = (sa.len(), sb.len());
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
    divergence(out, c, sa, sb)?;
    let (same, changed, only_a, only_b) = c.step_counts();
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
