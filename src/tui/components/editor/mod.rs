//! The prompt editor overlay (the run dialog): where the run comes from (the embedded model or
//! a server endpoint: URL, model name, the *name* of the environment variable holding the API
//! key, logprob kind), the system and user messages (several lines each), sampler settings,
//! max tokens and seed, prefilled from a run; submitting re-runs the edited prompt as a new run
//! of the same session. Owns the fields being edited (`update`); submitting asks `App` to start
//! the run. Drawing is in `draw.rs`. Never holds an API key. May import `components::ctx` (never
//! `components/mod.rs`, whose `Overlay` holds it), `theme`, `action` and the crate's `engine`
//! (the prompt type), `runs`, `trace` and `tui::text`.

mod draw;

use crate::engine::generate::Prompt;
use crate::runs::remote::{self as remote_run, Endpoint};
use crate::trace::{LogprobKind, Message, Run, RunId, SamplerSpec};
use crate::tui::action::{Action, Caret};

/// The editable fields, by index. The dialog shows them in `PromptEditor::order`.
pub const FIELDS: [&str; 13] = [
    "system",
    "user",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "max_tokens",
    "seed",
    "source",
    "endpoint",
    "model",
    "api_key_env",
    "logprobs",
];
pub const SYSTEM: usize = 0;
pub const USER: usize = 1;
pub const SOURCE: usize = 8;
pub const ENDPOINT: usize = 9;
pub const MODEL: usize = 10;
pub const KEY_ENV: usize = 11;
pub const LOGPROBS: usize = 12;

/// The values of the two choice fields.
pub const SOURCES: [&str; 2] = ["embedded", "endpoint"];
pub const KINDS: [&str; 2] = ["raw", "post-sampling"];

#[derive(Debug, Clone, PartialEq)]
pub struct PromptEditor {
    pub parent: RunId,
    /// The values of `FIELDS`, as typed.
    pub values: Vec<String>,
    pub focus: usize,
    /// Byte offset of the text cursor in the focused value.
    pub caret: usize,
    /// The run had a raw prompt (no messages): `user` is the whole prompt text.
    pub raw: bool,
    base: SamplerSpec,
    /// Messages other than the first system and the last user message, kept as they were.
    others: Vec<(usize, Message)>,
    /// The endpoint settings this dialog started from (timeouts, retries, routing).
    template: Option<Endpoint>,
}

fn kind_name(k: LogprobKind) -> &'static str {
    match k {
        LogprobKind::Raw => KINDS[0],
        LogprobKind::PostSampling => KINDS[1],
    }
}

impl PromptEditor {
    /// The dialog for `run`: a remote run re-runs on its endpoint (the key variable is not
    /// recorded, so it starts empty), an embedded one on the embedded model.
    pub fn new(run: &Run) -> PromptEditor {
        let raw = run.messages.is_empty();
        let sys = run.messages.iter().position(|m| m.role == "system");
        let user = run.messages.iter().rposition(|m| m.role == "user");
        let text = |i: Option<usize>| i.map_or(String::new(), |i| run.messages[i].content.clone());
        let others = run
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != sys && Some(*i) != user)
            .map(|(i, m)| (i, m.clone()))
            .collect();
        let s = &run.sampler;
        let remote = remote_run::provenance(run);
        let (endpoint, model) = remote.clone().unwrap_or_default();
        let values = vec![
            text(sys),
            if raw { run.rendered_prompt.clone() } else { text(user) },
            s.temperature.to_string(),
            s.top_p.to_string(),
            s.top_k.to_string(),
            s.min_p.to_string(),
            s.max_tokens_text(),
            s.seed.to_string(),
            SOURCES[usize::from(remote.is_some())].to_string(),
            endpoint,
            model,
            String::new(),
            kind_name(run.logprob_kind).to_string(),
        ];
        let caret = values[USER].len();
        PromptEditor {
            parent: run.id,
            values,
            focus: USER,
            caret,
            raw,
            base: s.clone(),
            others,
            template: None,
        }
    }

    /// Fills the endpoint fields from the endpoint last run in this UI: everything for an
    /// embedded run, the key variable for a remote run on the same endpoint.
    pub fn with_last(mut self, last: Option<&Endpoint>) -> PromptEditor {
        let Some(last) = last else { return self };
        if !self.remote() {
            self.values[ENDPOINT] = last.url.clone();
            self.values[MODEL] = last.model.clone();
            self.values[LOGPROBS] = kind_name(last.logprob_kind).to_string();
        }
        if self.values[ENDPOINT] == last.url || self.values[ENDPOINT] == last.shown() {
            self.values[ENDPOINT] = last.url.clone();
            self.values[KEY_ENV] = last.api_key_env.clone().unwrap_or_default();
        }
        self.template = Some(last.clone());
        self
    }

    /// Whether the run goes to a server endpoint.
    pub fn remote(&self) -> bool {
        self.values[SOURCE] == SOURCES[1]
    }

    /// The fields shown, top to bottom (the endpoint's only when it is the source).
    pub fn order(&self) -> Vec<usize> {
        let mut o = vec![SOURCE];
        if self.remote() {
            o.extend([ENDPOINT, MODEL, KEY_ENV, LOGPROBS]);
        }
        o.extend(0..SOURCE);
        o
    }

    fn focus_on(&mut self, i: usize) {
        self.focus = i;
        self.caret = self.values[i].len();
    }

    pub fn next_field(&mut self, forward: bool) {
        let o = self.order();
        let n = o.len();
        let at = o.iter().position(|&i| i == self.focus).unwrap_or(0);
        let to = if forward { (at + 1) % n } else { (at + n - 1) % n };
        self.focus_on(o[to]);
    }

    fn choice(i: usize) -> Option<&'static [&'static str; 2]> {
        match i {
            SOURCE => Some(&SOURCES),
            LOGPROBS => Some(&KINDS),
            _ => None,
        }
    }

    fn toggle(&mut self) {
        if let Some(options) = Self::choice(self.focus) {
            let v = &mut self.values[self.focus];
            *v = if v == options[0] { options[1] } else { options[0] }.to_string();
            self.caret = v.len();
        }
    }

    /// A typed character: inserted at the cursor (a newline only in the messages); space
    /// switches a choice field.
    pub fn input(&mut self, c: char) {
        if Self::choice(self.focus).is_some() {
            if c == ' ' {
                self.toggle();
            }
            return;
        }
        if c == '\n' && !matches!(self.focus, SYSTEM | USER) {
            return;
        }
        let v = &mut self.values[self.focus];
        let at = self.caret.min(v.len());
        v.insert(at, c);
        self.caret = at + c.len_utf8();
    }

    pub fn backspace(&mut self) {
        let v = &mut self.values[self.focus];
        let at = self.caret.min(v.len());
        if let Some((i, _)) = v[..at].char_indices().next_back() {
            v.remove(i);
            self.caret = i;
        }
    }

    /// Tab / shift-tab move between fields, typing edits the focused one, the arrows move the
    /// text cursor.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::FieldNext => self.next_field(true),
            Action::FieldPrev => self.next_field(false),
            Action::Input(c) => self.input(c),
            Action::InputBackspace => self.backspace(),
            Action::Caret(m) => self.caret(m),
            _ => {}
        }
    }

    /// Moves the text cursor; up and down leave the field from its first and last line,
    /// left and right switch a choice field.
    pub fn caret(&mut self, m: Caret) {
        if Self::choice(self.focus).is_some() {
            match m {
                Caret::Left | Caret::Right => self.toggle(),
                Caret::Up => self.next_field(false),
                Caret::Down => self.next_field(true),
                Caret::Home | Caret::End => {}
            }
            return;
        }
        let v = &self.values[self.focus];
        let at = self.caret.min(v.len());
        let line_start = v[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = v[at..].find('\n').map_or(v.len(), |i| at + i);
        let col = v[line_start..at].chars().count();
        // The byte offset of column `col` (or the line's end) in the line starting at `s`.
        let column = |s: usize| {
            let end = v[s..].find('\n').map_or(v.len(), |i| s + i);
            v[s..end].char_indices().nth(col).map_or(end, |(i, _)| s + i)
        };
        self.caret = match m {
            Caret::Left => v[..at].char_indices().next_back().map_or(0, |(i, _)| i),
            Caret::Right => v[at..].chars().next().map_or(at, |c| at + c.len_utf8()),
            Caret::Home => line_start,
            Caret::End => line_end,
            Caret::Up if line_start == 0 => return self.next_field(false),
            Caret::Up => {
                let prev = v[..line_start - 1].rfind('\n').map_or(0, |i| i + 1);
                column(prev)
            }
            Caret::Down if line_end == v.len() => return self.next_field(true),
            Caret::Down => column(line_end + 1),
        };
    }

    fn num<T: std::str::FromStr>(&self, i: usize) -> std::result::Result<T, String> {
        self.values[i]
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not a valid {}", self.values[i].trim(), FIELDS[i]))
    }

    /// The prompt and sampler to run, or what is wrong with a field.
    pub fn build(&self) -> std::result::Result<(Prompt, SamplerSpec), String> {
        let mut s = self.base.clone();
        s.temperature = self.num(2)?;
        s.top_p = self.num(3)?;
        s.top_k = self.num(4)?;
        s.min_p = self.num(5)?;
        // 'none' (as an uncapped run shows): until the end of the turn or the context.
        s.max_tokens = match self.values[6].trim() {
            "none" => crate::trace::NO_TOKEN_CAP,
            _ => self.num(6)?,
        };
        s.seed = self.num(7)?;
        if s.max_tokens == 0 {
            return Err("'max_tokens' must be at least 1".into());
        }
        if self.raw {
            if self.values[USER].is_empty() {
                return Err("'user' (the raw prompt) is empty".into());
            }
            return Ok((Prompt::Raw(self.values[USER].clone()), s));
        }
        let mut msgs: Vec<(usize, Message)> = self.others.clone();
        if !self.values[SYSTEM].is_empty() {
            msgs.push((0, Message::new("system", self.values[SYSTEM].clone())));
        }
        msgs.push((usize::MAX, Message::new("user", self.values[USER].clone())));
        msgs.sort_by_key(|(i, _)| *i);
        Ok((Prompt::Chat(msgs.into_iter().map(|(_, m)| m).collect()), s))
    }

    /// The endpoint to record from (`None`: the embedded model), or what is wrong with it.
    /// The key variable is checked by name only; its value is read when the run starts.
    pub fn endpoint(&self) -> std::result::Result<Option<Endpoint>, String> {
        if !self.remote() {
            return Ok(None);
        }
        if self.raw {
            return Err("a raw prompt cannot be sent to an endpoint (the server applies its \
                        chat template); switch 'source' to embedded"
                .into());
        }
        let url = self.values[ENDPOINT].trim();
        let model = self.values[MODEL].trim();
        if url.is_empty() {
            return Err("'endpoint' is empty (e.g. http://127.0.0.1:8080/v1)".into());
        }
        if model.is_empty() {
            return Err("'model' is empty (the model name to request from the server)".into());
        }
        let key = self.values[KEY_ENV].trim();
        let mut ep = match &self.template {
            Some(t) => Endpoint { url: url.into(), model: model.into(), ..t.clone() },
            None => Endpoint::new(url, model),
        };
        ep.api_key_env = (!key.is_empty()).then(|| key.to_string());
        ep.logprob_kind = if self.values[LOGPROBS] == KINDS[1] {
            LogprobKind::PostSampling
        } else {
            LogprobKind::Raw
        };
        ep.check().map_err(|e| e.to_string())?;
        Ok(Some(ep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{RunSource, SessionId};

    fn run() -> Run {
        let mut r = Run::new_recording(RunId(3), SessionId(1), SamplerSpec::default());
        r.messages = vec![Message::new("user", "ab\ncdef\ng")];
        r
    }

    #[test]
    fn the_caret_moves_over_lines_and_leaves_the_field_at_its_ends() {
        let mut e = PromptEditor::new(&run());
        assert_eq!((e.focus, e.caret), (USER, 9));
        e.caret(Caret::Up);
        assert_eq!(e.caret, 4, "column 1 of 'cdef'");
        e.input('X');
        assert_eq!(e.values[USER], "ab\ncXdef\ng");
        e.caret(Caret::End);
        e.caret(Caret::Up);
        assert_eq!(e.caret, 2, "end of 'ab'");
        e.input('\n');
        assert_eq!(e.values[USER], "ab\n\ncXdef\ng");
        e.backspace();
        e.caret(Caret::Home);
        e.caret(Caret::Up);
        assert_eq!(e.focus, SYSTEM);
        e.caret(Caret::Down);
        assert_eq!((e.focus, e.caret), (USER, 10), "back at the end of the user message");
        e.caret(Caret::Down);
        assert_eq!(e.focus, 2, "past the last line: the next field");
        e.input('\n');
        assert!(!e.values[2].contains('\n'), "no newline in a number");
    }

    #[test]
    fn an_uncapped_run_shows_and_keeps_no_cap() {
        let mut r = run();
        r.sampler.max_tokens = crate::trace::NO_TOKEN_CAP;
        let e = PromptEditor::new(&r);
        assert_eq!(e.values[6], "none");
        assert_eq!(e.build().unwrap().1.max_tokens, crate::trace::NO_TOKEN_CAP);
    }

    #[test]
    fn the_source_switch_shows_the_endpoint_fields() {
        let mut e = PromptEditor::new(&run());
        assert!(!e.remote());
        assert!(!e.order().contains(&ENDPOINT));
        e.focus_on(SOURCE);
        e.input(' ');
        assert!(e.remote());
        assert_eq!(&e.order()[..5], &[SOURCE, ENDPOINT, MODEL, KEY_ENV, LOGPROBS]);
        assert!(e.endpoint().unwrap_err().contains("'endpoint'"));
        e.next_field(true);
        "http://127.0.0.1:9/v1".chars().for_each(|c| e.input(c));
        e.next_field(true);
        "m".chars().for_each(|c| e.input(c));
        e.next_field(true);
        "sk-123 oops".chars().for_each(|c| e.input(c));
        let err = e.endpoint().unwrap_err();
        assert!(!err.contains("sk-123"), "the value is not echoed: {err}");
        e.values[KEY_ENV] = "MY_KEY".into();
        e.next_field(true);
        e.caret(Caret::Right);
        let ep = e.endpoint().unwrap().unwrap();
        assert_eq!(ep.api_key_env.as_deref(), Some("MY_KEY"));
        assert_eq!(ep.logprob_kind, LogprobKind::PostSampling);
    }

    #[test]
    fn a_remote_run_prefills_its_provenance() {
        let mut r = run();
        r.source = RunSource::Remote {
            endpoint: "http://h:1/v1".into(),
            server: crate::trace::RemoteInfo { model: "r1".into(), ..Default::default() },
        };
        let e = PromptEditor::new(&r);
        assert!(e.remote());
        assert_eq!(
            (e.values[ENDPOINT].as_str(), e.values[MODEL].as_str()),
            ("http://h:1/v1", "r1")
        );
        let mut last = Endpoint::new("http://h:1/v1", "other");
        last.api_key_env = Some("K".into());
        let e = e.with_last(Some(&last));
        assert_eq!(e.values[MODEL], "r1", "the run's model wins");
        assert_eq!(e.values[KEY_ENV], "K", "same endpoint: its key variable");
    }
}
