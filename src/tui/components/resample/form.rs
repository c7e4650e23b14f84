//! The resample form (a dialog): how many continuations to sample from the reasoning step at
//! the cursor, and most tokens each; submitting asks `App` to start them. Owns the values as
//! typed. Drawn by `draw.rs`. May import `action` and the crate's `runs` and `trace`.

use crate::runs::resample;
use crate::trace::RunId;
use crate::tui::action::Action;

/// The form that starts a resample.
#[derive(Debug, Clone, PartialEq)]
pub struct ResampleForm {
    pub run: RunId,
    /// The reasoning step (0-based) and the token step where it starts.
    pub reasoning_step: usize,
    pub at: u32,
    /// The step's first words, for the title.
    pub preview: String,
    /// How many continuations, as typed.
    pub samples: String,
    /// Most tokens per continuation (prefix included), as typed.
    pub max_tokens: String,
    /// The run's temperature (0.7 when it was greedy).
    pub temperature: f32,
    /// 0: samples, 1: max tokens.
    pub focus: usize,
}

impl ResampleForm {
    pub fn next_field(&mut self) {
        self.focus = (self.focus + 1) % 2;
    }

    pub fn input(&mut self, c: char) {
        if c.is_ascii_digit() {
            if self.focus == 0 { &mut self.samples } else { &mut self.max_tokens }.push(c);
        }
    }

    pub fn backspace(&mut self) {
        if self.focus == 0 { &mut self.samples } else { &mut self.max_tokens }.pop();
    }

    /// Tab switches the field, digits edit it.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::FieldNext | Action::FieldPrev => self.next_field(),
            Action::Input(c) => self.input(c),
            Action::InputBackspace => self.backspace(),
            _ => {}
        }
    }

    /// How many continuations and most tokens, or what is wrong with them.
    pub fn values(&self) -> std::result::Result<(usize, usize), String> {
        let n: usize =
            self.samples.parse().map_err(|_| "'samples' must be a number".to_string())?;
        if n == 0 || n > resample::MAX_SAMPLES {
            return Err(format!("'samples' is {n}; give 1 to {}", resample::MAX_SAMPLES));
        }
        let m: usize = match self.max_tokens.trim() {
            "none" => crate::trace::NO_TOKEN_CAP,
            t => t.parse().map_err(|_| "'max tokens' must be a number or 'none'".to_string())?,
        };
        Ok((n, m))
    }
}
