//! Drawing the resample form and the resample panel (progress of every continuation, then the
//! final answers grouped with counts and the counterfactual importance). No I/O; answers
//! (`FinalAnswer::short`) and labels pass through `tui::text`. May import its
//! component, `components::ctx`, `components::widgets` and `theme`.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::form::ResampleForm;
use super::{Outcome, ResampleJob};
use crate::tui::components::ctx::Ctx;
use crate::tui::components::widgets::{dialog, fit};
use crate::tui::text::shown;
use crate::tui::theme::Theme;

impl ResampleForm {
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let (t, r) = (cx.theme, self);
        let title = format!(" Resample {} from reasoning step {} ", r.run, r.reasoning_step);
        let inner = dialog(t, f, area, (64, 10), title);
        let w = usize::from(inner.width);
        let field = |name: &'static str, value: &str, focus: bool| {
            let st = if focus { t.get("editor.field.focus") } else { t.get("editor.field") };
            let cursor = if focus { "▏" } else { "" };
            Line::from(vec![
                Span::styled(name, st),
                Span::styled(format!("{value}{cursor}"), t.get("ui.text")),
            ])
        };
        let preview = shown(&r.preview.replace('\n', " ")).into_owned();
        let lines = vec![
            Line::from(vec![
                Span::styled("from       ", t.get("editor.field")),
                Span::styled(
                    fit(&format!("step {} «{preview}…»", r.at), w.saturating_sub(11)),
                    t.get("ui.mark"),
                ),
            ]),
            field("samples    ", &r.samples, r.focus == 0),
            field("max tokens ", &r.max_tokens, r.focus == 1),
            Line::from(Span::styled(
                format!("           counts the {} forced tokens too", r.at),
                t.get("ui.dim"),
            )),
            Line::from(vec![
                Span::styled("sampler    ", t.get("editor.field")),
                Span::styled(
                    format!("the run's, temperature {}, seeds after its own", r.temperature),
                    t.get("ui.text"),
                ),
            ]),
            Line::from(""),
            Line::from(Span::styled(
                "the prefix is forced; this step and the rest are resampled",
                t.get("ui.dim"),
            )),
            Line::from(Span::styled("tab next field · enter start · esc cancel", t.get("ui.dim"))),
        ];
        f.render_widget(Paragraph::new(lines), inner);
    }
}

fn progress_line(t: &Theme, r: &ResampleJob, i: usize, w: usize) -> Line<'static> {
    let id = r.runs[i];
    let sel = i == r.sel;
    let (state, st) = match &r.outcomes[i] {
        Outcome::Running if r.tokens[i] == 0 => ("queued".to_string(), t.get("ui.dim")),
        Outcome::Running => ("running".to_string(), t.get("job.running")),
        Outcome::Done(a, differs) => {
            let changed = r.original.changed(a);
            let key = if changed { "resample.changed" } else { "compare.same" };
            // Where the text first parts from the parent's, then the answer it reached.
            let path = match differs {
                Some(d) => format!("«{}» → ", shown(d)),
                None => "same text → ".to_string(),
            };
            (
                format!(
                    "{} {path}{}",
                    if changed { "changed" } else { "same   " },
                    shown(&a.short())
                ),
                t.get(key),
            )
        }
        Outcome::Cancelled => ("cancelled".to_string(), t.get("ui.warning")),
        Outcome::Failed(m) => (format!("failed: {}", shown(m)), t.get("ui.error")),
    };
    let bar_w = 12usize;
    let filled = (r.tokens[i] * bar_w).checked_div(r.max_tokens).unwrap_or(0).min(bar_w);
    let bar = format!("{}{}", "█".repeat(filled), "·".repeat(bar_w - filled));
    let head = format!("{} {id:<8} {bar} {:>5} ", if sel { "▶" } else { " " }, r.tokens[i]);
    let rest = w.saturating_sub(head.chars().count());
    let head_st = if sel { t.get("ui.selection") } else { t.get("ui.text") };
    Line::from(vec![Span::styled(head, head_st), Span::styled(fit(&state, rest), st)])
}

impl ResampleJob {
    /// The panel over `area`.
    pub fn draw(&self, f: &mut Frame, area: Rect, cx: &Ctx) {
        let (t, r) = (cx.theme, self);
        let groups = r.summary.as_ref().map_or(0, |s| s.groups.len());
        let h = match &r.summary {
            Some(s) if s.total > 0 => r.runs.len() + groups + 8,
            _ => r.runs.len() + 7,
        } as u16;
        let state = if r.finished() {
            "done".to_string()
        } else {
            format!("{} of {} done", r.runs.len() - r.running(), r.runs.len())
        };
        let title = format!(
            " Resample {} from reasoning step {} (token {}) · {state} ",
            r.parent, r.reasoning_step, r.at
        );
        let inner = dialog(t, f, area, (90, h), title);
        let w = usize::from(inner.width);
        let mut lines = vec![Line::from(vec![
            Span::styled("original answer  ", t.get("editor.field")),
            Span::styled(fit(&shown(&r.original.short()), w.saturating_sub(17)), t.get("ui.text")),
        ])];
        match &r.summary {
            Some(s) if s.total == 0 => lines.push(Line::from(Span::styled(
                "no continuation finished (cancelled or failed)",
                t.get("ui.warning"),
            ))),
            Some(s) => {
                lines.push(Line::from(vec![
                    Span::styled("importance       ", t.get("editor.field")),
                    Span::styled(
                        format!(
                            "{:.2}: the answer changed in {} of {} continuations",
                            s.importance(),
                            s.changed,
                            s.total
                        ),
                        t.get(if s.changed > 0 { "resample.changed" } else { "compare.same" }),
                    ),
                ]));
                lines.push(Line::from(Span::styled("answers", t.get("ui.title"))));
                for g in &s.groups {
                    let what = if g.changed { "changed" } else { "same" };
                    let key = if g.changed { "resample.changed" } else { "compare.same" };
                    lines.push(Line::from(Span::styled(
                        fit(&format!("{:>4}×  {}  ({what})", g.runs.len(), shown(&g.answer)), w),
                        t.get(key),
                    )));
                }
            }
            None => lines.push(Line::from(Span::styled(
                if r.max_tokens >= crate::trace::NO_TOKEN_CAP {
                    format!("temperature {} · no token cap", r.temperature)
                } else {
                    format!("temperature {} · at most {} tokens each", r.temperature, r.max_tokens)
                },
                t.get("ui.dim"),
            ))),
        }
        lines.push(Line::from(Span::styled("continuations", t.get("ui.title"))));
        let room = usize::from(inner.height).saturating_sub(lines.len() + 2);
        let skip = (r.sel + 1).saturating_sub(room);
        for i in (0..r.runs.len()).skip(skip).take(room) {
            lines.push(progress_line(t, r, i, w));
        }
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            "↑/↓ pick · enter compare with the parent · X cancel · esc hide (P)",
            t.get("ui.dim"),
        )));
        f.render_widget(Paragraph::new(lines), inner);
    }
}
