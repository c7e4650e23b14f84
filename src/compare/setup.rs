//! What differs between two runs before their first token: the prompt (as a word diff), the
//! system message, the sampler settings, the model (name, architecture, fingerprint,
//! quantization) and the source (embedded, imported, or which endpoint). Depends on `trace`
//! only.

use std::time::{Duration, Instant};

use similar::{ChangeTag, TextDiff};

use crate::trace::{Run, RunSource, SamplerSpec};

/// One piece of a word diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Same,
    /// Only in run A.
    Removed,
    /// Only in run B.
    Added,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Same => "same",
            Change::Removed => "removed",
            Change::Added => "added",
        }
    }
}

/// A setting that differs: its name, A's value and B's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub a: String,
    pub b: String,
}

/// What differs before the first token.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Setup {
    /// The prompt without its system message: the chat messages (`role: content` per line) or
    /// the raw text.
    pub prompt_differs: bool,
    /// The word diff of the prompts (whitespace kept), consecutive pieces merged.
    pub prompt: Vec<(Change, String)>,
    pub system_differs: bool,
    pub system: Vec<(Change, String)>,
    /// Sampler settings, model and source fields that differ, in a fixed order.
    pub settings: Vec<Setting>,
}

impl Setup {
    /// The names of the settings that differ (`temperature`, `model.fingerprint`, `source`,
    /// …), with `system` first when the system messages differ.
    pub fn settings_differ(&self) -> Vec<&'static str> {
        let system = self.system_differs.then_some("system");
        system.into_iter().chain(self.settings.iter().map(|s| s.name)).collect()
    }

    /// Whether the runs start alike: same prompt, system message and settings.
    pub fn same(&self) -> bool {
        !self.prompt_differs && !self.system_differs && self.settings.is_empty()
    }
}

/// The system message of a run (its `system` messages, joined).
fn system_text(r: &Run) -> String {
    r.messages
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The prompt of a run without its system message: `role: content` per message, or the raw
/// prompt text for a run without messages.
pub fn prompt_text(r: &Run) -> String {
    if r.messages.is_empty() {
        return r.rendered_prompt.clone();
    }
    let turns: Vec<&crate::trace::Message> =
        r.messages.iter().filter(|m| m.role != "system").collect();
    // One user turn reads as its text alone.
    if let [m] = turns.as_slice() {
        if m.role == "user" {
            return m.content.clone();
        }
    }
    turns.iter().map(|m| format!("{}: {}", m.role, m.content)).collect::<Vec<_>>().join("\n")
}

/// A word diff of `a` and `b`, pieces of one kind merged.
pub fn word_diff(a: &str, b: &str) -> Vec<(Change, String)> {
    let diff = TextDiff::configure()
        .deadline(Instant::now() + Duration::from_millis(200))
        .diff_words(a, b);
    let mut out: Vec<(Change, String)> = Vec::new();
    for ch in diff.iter_all_changes() {
        let kind = match ch.tag() {
            ChangeTag::Equal => Change::Same,
            ChangeTag::Delete => Change::Removed,
            ChangeTag::Insert => Change::Added,
        };
        match out.last_mut() {
            Some((k, s)) if *k == kind => s.push_str(ch.value()),
            _ => out.push((kind, ch.value().to_string())),
        }
    }
    out
}

/// Where a run came from, as people read it.
pub fn source_text(r: &Run) -> String {
    match &r.source {
        RunSource::Embedded => "embedded".into(),
        RunSource::Imported => "imported".into(),
        RunSource::Remote { endpoint, server } if !server.model.is_empty() => {
            format!("remote {endpoint} ({})", server.model)
        }
        RunSource::Remote { endpoint, .. } => format!("remote {endpoint}"),
        RunSource::File { path, format, place, .. } if !place.is_empty() => {
            format!("imported {format} file {path} ({place})")
        }
        RunSource::File { path, format, .. } => format!("imported {format} file {path}"),
        RunSource::Scored(s) => format!("scored by {} ({})", r.model.name, s.tokens.as_str()),
    }
}

fn sampler_fields(s: &SamplerSpec) -> [(&'static str, String); 9] {
    [
        ("temperature", s.temperature.to_string()),
        ("top_k", s.top_k.to_string()),
        ("top_p", s.top_p.to_string()),
        ("min_p", s.min_p.to_string()),
        ("repeat_penalty", s.repeat_penalty.to_string()),
        ("repeat_last_n", s.repeat_last_n.to_string()),
        ("seed", s.seed.to_string()),
        ("max_tokens", s.max_tokens_text()),
        ("ignore_eos", s.ignore_eos.to_string()),
    ]
}

/// What differs between `a` and `b` before their first token.
pub fn setup(a: &Run, b: &Run) -> Setup {
    let (pa, pb) = (prompt_text(a), prompt_text(b));
    let (sa, sb) = (system_text(a), system_text(b));
    let mut settings = Vec::new();
    for ((name, va), (_, vb)) in
        sampler_fields(&a.sampler).into_iter().zip(sampler_fields(&b.sampler))
    {
        if va != vb {
            settings.push(Setting { name, a: va, b: vb });
        }
    }
    let (ma, mb) = (&a.model, &b.model);
    for (name, va, vb) in [
        ("model.name", &ma.name, &mb.name),
        ("model.arch", &ma.arch, &mb.arch),
        ("model.fingerprint", &ma.fingerprint, &mb.fingerprint),
        ("model.quant", &ma.quant, &mb.quant),
    ] {
        if va != vb {
            settings.push(Setting { name, a: va.clone(), b: vb.clone() });
        }
    }
    let (xa, xb) = (source_text(a), source_text(b));
    if xa != xb {
        settings.push(Setting { name: "source", a: xa, b: xb });
    }
    Setup {
        prompt_differs: pa != pb,
        prompt: word_diff(&pa, &pb),
        system_differs: sa != sb,
        system: if sa == sb { Vec::new() } else { word_diff(&sa, &sb) },
        settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Message, RunId, SessionId};

    #[test]
    fn an_edited_prompt_and_new_settings_are_named() {
        let mut a = Run::new_recording(RunId(1), SessionId(1), SamplerSpec::default());
        a.messages =
            vec![Message::new("system", "Be brief."), Message::new("user", "Name a colour.")];
        let mut b = a.clone();
        assert!(setup(&a, &b).same());
        b.messages[1].content = "Name a fruit, briefly.".into();
        b.sampler.temperature = 0.8;
        b.source =
            RunSource::Remote { endpoint: "http://h:8000/v1".into(), server: Default::default() };
        let s = setup(&a, &b);
        assert!(s.prompt_differs && !s.system_differs);
        assert_eq!(s.settings_differ(), vec!["temperature", "source"]);
        let removed: String =
            s.prompt.iter().filter(|p| p.0 == Change::Removed).map(|p| p.1.as_str()).collect();
        let added: String =
            s.prompt.iter().filter(|p| p.0 == Change::Added).map(|p| p.1.as_str()).collect();
        assert_eq!((removed.as_str(), added.as_str()), ("colour.", "fruit, briefly."));
        let same: String =
            s.prompt.iter().filter(|p| p.0 == Change::Same).map(|p| p.1.as_str()).collect();
        assert_eq!(same, "Name a ");
        b.messages[0].content = "Be thorough.".into();
        assert_eq!(setup(&a, &b).settings_differ()[0], "system");
    }
}
