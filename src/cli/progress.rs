//! What `run` and `record` show on stderr while a model loads: a byte progress bar, then the
//! load warnings and one line naming the model.

use std::path::Path;

use crate::record::Event;
use crate::sanitize::for_terminal;

pub struct LoadProgress {
    bar: indicatif::ProgressBar,
}

impl LoadProgress {
    pub fn new(model: &Path) -> Self {
        // A command run for another process must not draw on this one's terminal.
        let target = if super::out::is_redirected() {
            indicatif::ProgressDrawTarget::hidden()
        } else {
            indicatif::ProgressDrawTarget::stderr()
        };
        let bar = indicatif::ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "loading {msg} {bar:30} {binary_bytes}/{binary_total_bytes}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(
            model.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        );
        LoadProgress { bar }
    }

    /// Shows a loading event; returns false for events it does not handle.
    pub fn show(&self, event: &Event) -> bool {
        match event {
            Event::Loading { done, total } => {
                self.bar.set_length(*total);
                self.bar.set_position(*done);
            }
            Event::Loaded { model, load_ms, warnings } => {
                self.bar.finish_and_clear();
                for w in warnings {
                    errln!("warning: {}", for_terminal(w, false));
                }
                errln!(
                    "{} ({}, {}, {} layers) loaded in {load_ms} ms",
                    for_terminal(&model.name, false),
                    model.arch,
                    model.quant,
                    model.layers
                );
            }
            _ => return false,
        }
        true
    }

    /// Clears the bar if loading never finished (the engine failed first).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
