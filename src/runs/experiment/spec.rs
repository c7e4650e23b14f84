//! The experiment spec (TOML): the model or endpoint, the sampler, samples per variant, the
//! first seed, the token cap, the expected answer and two or more `[[variant]]`s. Unknown keys
//! are refused by name (`unknown key 'sampels' in [[variant]] 2`), so a typo never runs an
//! experiment other than the one written down.

use serde::Deserialize;

use super::{Error, Result};
use crate::engine::generate::Prompt;
use crate::trace::{Message, SamplerSpec};

/// The most samples per variant one spec may ask for.
pub const MAX_SAMPLES: usize = 100_000;
/// The temperature when the spec names none (greedy samples would all be the same).
pub const DEFAULT_TEMPERATURE: f32 = 0.7;
/// The token cap when the spec names none.
pub const DEFAULT_MAX_TOKENS: usize = 512;

const TOP_KEYS: &[&str] = &[
    "name",
    "model",
    "endpoint",
    "remote_model",
    "api_key_env",
    "retries",
    "idle_timeout",
    "starts_thinking",
    "samples",
    "seed",
    "max_tokens",
    "expect",
    "top_logprobs",
    "prompt",
    "system",
    "raw",
    "sampler",
    "variant",
];
const SAMPLER_KEYS: &[&str] =
    &["temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n"];
const VARIANT_KEYS: &[&str] = &["name", "prompt", "system", "raw"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    model: Option<String>,
    endpoint: Option<String>,
    remote_model: Option<String>,
    api_key_env: Option<String>,
    retries: Option<u32>,
    idle_timeout: Option<u64>,
    #[serde(default)]
    starts_thinking: bool,
    samples: Option<usize>,
    #[serde(default)]
    seed: u64,
    max_tokens: Option<usize>,
    expect: Option<String>,
    top_logprobs: Option<usize>,
    prompt: Option<String>,
    system: Option<String>,
    #[serde(default)]
    raw: bool,
    #[serde(default)]
    sampler: RawSampler,
    #[serde(default, rename = "variant")]
    variants: Vec<RawVariant>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSampler {
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    repeat_last_n: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    name: Option<String>,
    prompt: Option<String>,
    system: Option<String>,
    raw: Option<bool>,
}

/// Where the samples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The embedded engine: a GGUF path, `hf:…` or `demo`.
    Model(String),
    /// An OpenAI-compatible server.
    Endpoint {
        url: String,
        remote_model: String,
        api_key_env: Option<String>,
        retries: u32,
        idle_timeout_s: u64,
        starts_thinking: bool,
    },
}

/// What the runs are checked against.
#[derive(Debug, Clone)]
pub enum Expect {
    Value(String),
    Regex(regex::Regex),
}

impl Expect {
    /// As written in the spec.
    pub fn shown(&self) -> String {
        match self {
            Expect::Value(v) => v.clone(),
            Expect::Regex(r) => format!("/{}/", r.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: String,
    pub prompt: Prompt,
}

/// A checked spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub source: Source,
    /// The sampler of sample 0; sample `i` uses seed `sampler.seed + i`.
    pub sampler: SamplerSpec,
    pub samples: usize,
    pub top_logprobs: usize,
    pub expect: Option<Expect>,
    pub variants: Vec<Variant>,
}

impl Spec {
    /// The seed of sample `i` (the same in every variant: paired samples).
    pub fn seed_of(&self, sample: usize) -> u64 {
        self.sampler.seed.wrapping_add(sample as u64)
    }

    /// Parses and checks a spec's text; errors name the key that is wrong.
    pub fn parse(text: &str) -> Result<Spec> {
        let bad = |m: String| Error::Spec(m);
        let table: toml::Table = text.parse().map_err(|e| bad(format!("not valid TOML: {e}")))?;
        check_keys(&table)?;
        // From the text, so that a wrong type is shown on its line.
        let raw: RawSpec = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        raw.check()
    }
}

/// Unknown keys, by name and place, before serde sees them (its messages name no table).
fn check_keys(table: &toml::Table) -> Result<()> {
    if let Some(key) = table.keys().find(|k| !TOP_KEYS.contains(&k.as_str())) {
        return Err(Error::Spec(format!(
            "unknown key '{key}' (known keys: {})",
            TOP_KEYS.join(", ")
        )));
    }
    if let Some(s) = table.get("sampler").and_then(|v| v.as_table()) {
        if let Some(key) = s.keys().find(|k| !SAMPLER_KEYS.contains(&k.as_str())) {
            return Err(Error::Spec(format!(
                "unknown key '{key}' in [sampler] (known keys: {})",
                SAMPLER_KEYS.join(", ")
            )));
        }
    }
    match table.get("variant") {
        None => {}
        Some(toml::Value::Array(variants)) => {
            for (i, v) in variants.iter().enumerate() {
                let Some(t) = v.as_table() else {
                    return Err(Error::Spec(format!("[[variant]] {} is not a table", i + 1)));
                };
                if let Some(key) = t.keys().find(|k| !VARIANT_KEYS.contains(&k.as_str())) {
                    return Err(Error::Spec(format!(
                        "unknown key '{key}' in [[variant]] {} (known keys: {})",
                        i + 1,
                        VARIANT_KEYS.join(", ")
                    )));
                }
            }
        }
        Some(_) => {
            return Err(Error::Spec("'variant' must be a list of tables: write [[variant]]".into()))
        }
    }
    Ok(())
}

impl RawSpec {
    fn check(self) -> Result<Spec> {
        let bad = |m: String| Err(Error::Spec(m));
        if self.name.trim().is_empty() {
            return bad("'name' is empty".into());
        }
        let source = match (&self.model, &self.endpoint) {
            (Some(_), Some(_)) => return bad("give 'model' or 'endpoint', not both".into()),
            (_, Some(url)) => {
                let Some(remote_model) = self.remote_model.clone() else {
                    return bad(
                        "'endpoint' needs 'remote_model' (the model name to request)".into()
                    );
                };
                Source::Endpoint {
                    url: url.clone(),
                    remote_model,
                    api_key_env: self.api_key_env.clone(),
                    retries: self.retries.unwrap_or(2),
                    idle_timeout_s: self.idle_timeout.unwrap_or(600).max(1),
                    starts_thinking: self.starts_thinking,
                }
            }
            (model, None) => {
                for (key, set) in [
                    ("remote_model", self.remote_model.is_some()),
                    ("api_key_env", self.api_key_env.is_some()),
                    ("retries", self.retries.is_some()),
                    ("idle_timeout", self.idle_timeout.is_some()),
                ] {
                    if set {
                        return bad(format!("'{key}' is only for an 'endpoint'"));
                    }
                }
                Source::Model(model.clone().unwrap_or_else(|| "demo".into()))
            }
        };
        let samples = match self.samples {
            None => return bad("'samples' is missing (samples per variant)".into()),
            Some(0) => return bad("'samples' must be at least 1, not 0".into()),
            Some(n) if n > MAX_SAMPLES => {
                return bad(format!("'samples' is {n}; at most {MAX_SAMPLES} per variant"))
            }
            Some(n) => n,
        };
        let max_tokens = match self.max_tokens {
            Some(0) => return bad("'max_tokens' must be at least 1, not 0".into()),
            Some(n) => n,
            None => DEFAULT_MAX_TOKENS,
        };
        let top_logprobs = self.top_logprobs.unwrap_or(5);
        if top_logprobs > crate::trace::MAX_ALTERNATIVES {
            return bad(format!(
                "'top_logprobs' is {top_logprobs}; at most {}",
                crate::trace::MAX_ALTERNATIVES
            ));
        }
        let d = SamplerSpec::default();
        let s = &self.sampler;
        let sampler = SamplerSpec {
            temperature: s.temperature.unwrap_or(DEFAULT_TEMPERATURE),
            top_k: s.top_k.unwrap_or(d.top_k),
            top_p: s.top_p.unwrap_or(d.top_p),
            min_p: s.min_p.unwrap_or(d.min_p),
            repeat_penalty: s.repeat_penalty.unwrap_or(d.repeat_penalty),
            repeat_last_n: s.repeat_last_n.unwrap_or(d.repeat_last_n),
            seed: self.seed,
            max_tokens,
            ignore_eos: false,
        };
        crate::engine::sampler::Sampler::new(&sampler)
            .map_err(|e| Error::Spec(format!("[sampler]: {e}")))?;
        let expect = match self.expect.as_deref() {
            None => None,
            Some(e) if e.len() >= 2 && e.starts_with('/') && e.ends_with('/') => {
                let re = regex::Regex::new(&e[1..e.len() - 1]).map_err(|err| {
                    Error::Spec(format!("'expect' is not a valid /regex/: {err}"))
                })?;
                Some(Expect::Regex(re))
            }
            Some(e) if e.trim().is_empty() => return bad("'expect' is empty".into()),
            Some(e) => Some(Expect::Value(e.trim().to_string())),
        };
        if self.variants.is_empty() {
            return bad("the spec has no [[variant]]; give two or more".into());
        }
        if self.variants.len() < 2 {
            return bad("the spec has one [[variant]]; give two or more to compare".into());
        }
        let remote = matches!(source, Source::Endpoint { .. });
        let mut variants: Vec<Variant> = Vec::new();
        for (i, v) in self.variants.iter().enumerate() {
            let at = format!("[[variant]] {}", i + 1);
            let name = match v.name.as_deref().map(str::trim) {
                None | Some("") => return bad(format!("{at} has no 'name'")),
                Some(n) => n.to_string(),
            };
            if variants.iter().any(|o| o.name == name) {
                return bad(format!("'name' '{name}' of {at} is used twice"));
            }
            let raw = v.raw.unwrap_or(self.raw);
            let Some(text) = v.prompt.clone().or_else(|| self.prompt.clone()) else {
                return bad(format!("{at} ('{name}') has no 'prompt' and the spec gives none"));
            };
            let system = v.system.clone().or_else(|| self.system.clone());
            let prompt = if raw {
                if remote {
                    return bad(format!(
                        "{at} ('{name}'): 'raw' cannot be used with an 'endpoint' (the server applies its chat template)"
                    ));
                }
                if v.system.is_some() {
                    return bad(format!("{at} ('{name}'): 'system' cannot be used with 'raw'"));
                }
                Prompt::Raw(text)
            } else {
                let mut m = Vec::new();
                if let Some(s) = system.filter(|s| !s.is_empty()) {
                    m.push(Message::new("system", s));
                }
                m.push(Message::new("user", text));
                Prompt::Chat(m)
            };
            if variants.iter().any(|o| o.prompt == prompt) {
                tracing::warn!("variant '{name}' has the same prompt as an earlier one");
            }
            variants.push(Variant { name, prompt });
        }
        Ok(Spec {
            name: self.name.trim().to_string(),
            source,
            sampler,
            samples,
            top_logprobs,
            expect,
            variants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "step by step"
model = "m.gguf"
samples = 4
seed = 10
max_tokens = 64
expect = "42"
[sampler]
temperature = 0.9
[[variant]]
name = "plain"
prompt = "What is 6*7?"
[[variant]]
name = "steps"
prompt = "What is 6*7? Think step by step."
system = "Be careful."
"#;

    fn err(text: &str) -> String {
        Spec::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_spec_parses_with_paired_seeds() {
        let s = Spec::parse(GOOD).unwrap();
        assert_eq!(s.name, "step by step");
        assert_eq!(s.source, Source::Model("m.gguf".into()));
        assert_eq!((s.samples, s.sampler.max_tokens, s.sampler.temperature), (4, 64, 0.9));
        assert_eq!((s.seed_of(0), s.seed_of(3)), (10, 13));
        assert_eq!(s.variants.len(), 2);
        let Prompt::Chat(m) = &s.variants[1].prompt else { panic!() };
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].role, "system");
        assert!(matches!(s.expect, Some(Expect::Value(ref v)) if v == "42"));
    }

    #[test]
    fn bad_specs_name_the_key() {
        let typo = GOOD.replace("name = \"steps\"", "name = \"steps\"\nsampels = 3");
        assert!(err(&typo).contains("unknown key 'sampels' in [[variant]] 2"), "{}", err(&typo));
        let top = GOOD.replace("samples = 4", "sampels = 4");
        assert!(err(&top).contains("unknown key 'sampels'"), "{}", err(&top));
        let zero = GOOD.replace("samples = 4", "samples = 0");
        assert!(err(&zero).contains("'samples' must be at least 1"), "{}", err(&zero));
        let none = GOOD.split("[[variant]]").next().unwrap().to_string();
        assert!(err(&none).contains("no [[variant]]"), "{}", err(&none));
        let one = GOOD.rsplit_once("[[variant]]").unwrap().0.to_string();
        assert!(err(&one).contains("one [[variant]]"), "{}", err(&one));
        let re = GOOD.replace("expect = \"42\"", "expect = \"/4(/\"");
        assert!(err(&re).contains("'expect'"), "{}", err(&re));
        let both = GOOD.replace("model = ", "endpoint = \"http://h\"\nmodel = ");
        assert!(err(&both).contains("'model' or 'endpoint'"), "{}", err(&both));
        let samp = GOOD.replace("temperature = 0.9", "temprature = 0.9");
        assert!(err(&samp).contains("unknown key 'temprature' in [sampler]"), "{}", err(&samp));
        let ty = GOOD.replace("samples = 4", "samples = \"four\"");
        assert!(err(&ty).contains("samples"), "{}", err(&ty));
    }

    #[test]
    fn a_regex_expectation_and_a_shared_prompt() {
        let text = r#"
name = "x"
samples = 1
expect = "/^4[0-9]$/"
prompt = "Q?"
[[variant]]
name = "a"
[[variant]]
name = "b"
system = "S"
"#;
        let s = Spec::parse(text).unwrap();
        assert!(matches!(s.expect, Some(Expect::Regex(_))));
        assert_eq!(s.expect.as_ref().unwrap().shown(), "/^4[0-9]$/");
        assert_eq!(s.source, Source::Model("demo".into()));
        assert_ne!(s.variants[0].prompt, s.variants[1].prompt);
    }
}
