//! Storing annotations in `App`: a note or user flag submitted from its dialog, and one
//! deleted from the trace cursor or the Flags list (`Effect::Delete`). Notes go to
//! `Store::put_notes`, user flags into the run's flags (beside the automatic ones, which
//! re-analysis keeps them next to); the viewer's run and the sessions list's flag counts are
//! updated to match.

use super::App;
use crate::export::annotate::span_text;
use crate::trace::{Flag, Note, RunId};
use crate::tui::components::flag_editor::FlagEditor;
use crate::tui::components::note_editor::NoteEditor;
use crate::tui::components::Annotation;
use crate::tui::error::{Error, Result};

impl App {
    /// Deletes a note or user flag; from the Flags list, its selection then stays in range.
    pub(super) fn delete(&mut self, what: Annotation, from_list: bool) {
        let result = match &what {
            Annotation::Note(run, n) => self.delete_note(*run, n),
            Annotation::Flag(run, f) => self.delete_flag(*run, f),
        };
        match result {
            Ok(()) => {
                if from_list {
                    let n = self.viewer.flag_rows().len();
                    self.viewer.flag_sel = self.viewer.flag_sel.min(n.saturating_sub(1));
                }
                self.message.push_str(" · u undoes");
                self.undo = Some(what);
            }
            Err(e) => self.message = format!("could not delete: {e}"),
        }
    }

    /// `u`: stores the note or user flag deleted last again.
    pub(super) fn undo_delete(&mut self) {
        let Some(what) = self.undo.take() else {
            self.message = "nothing to undo".into();
            return;
        };
        let result = match &what {
            Annotation::Note(run, n) => self.store_ref().and_then(|s| {
                let mut notes = s.notes(*run)?;
                notes.push(n.clone());
                self.put_notes(*run, notes)?;
                Ok(format!("restored the note on steps {}", span_text(n.start, n.end)))
            }),
            Annotation::Flag(run, f) => self.store_ref().and_then(|s| {
                let mut flags = s.flags(*run)?;
                flags.push(f.clone());
                self.put_flags(*run, flags)?;
                Ok(format!("restored the user flag on steps {}", span_text(f.start, f.end)))
            }),
        };
        self.message = match result {
            Ok(m) => m,
            Err(e) => {
                self.undo = Some(what);
                format!("could not undo: {e}")
            }
        };
    }

    fn store_ref(&self) -> Result<std::sync::Arc<crate::store::Store>> {
        self.store.clone().ok_or_else(|| Error::Job("no store".into()))
    }

    /// Stores the edited note (replacing the one it edits) and shows it.
    pub(super) fn save_note(&mut self, e: &NoteEditor) -> Result<()> {
        let note = e.build().map_err(Error::Job)?;
        let store = self.store_ref()?;
        let mut notes = store.notes(e.run)?;
        match e.editing.as_ref().and_then(|old| notes.iter().position(|n| n == old)) {
            Some(i) => notes[i] = note.clone(),
            None => notes.push(note.clone()),
        }
        self.put_notes(e.run, notes)?;
        self.viewer.mark = None;
        self.message = format!("note saved on steps {}", span_text(note.start, note.end));
        Ok(())
    }

    /// Stores the edited user flag (replacing the one it edits) and shows it.
    pub(super) fn save_flag(&mut self, e: &FlagEditor) -> Result<()> {
        let flag = e.build().map_err(Error::Job)?;
        let store = self.store_ref()?;
        let mut flags = store.flags(e.run)?;
        match e.editing.as_ref().and_then(|old| flags.iter().position(|f| f == old)) {
            Some(i) => flags[i] = flag.clone(),
            None => flags.push(flag.clone()),
        }
        self.put_flags(e.run, flags)?;
        self.viewer.mark = None;
        self.message = format!("user flag saved on steps {}", span_text(flag.start, flag.end));
        Ok(())
    }

    fn delete_note(&mut self, run: RunId, note: &Note) -> Result<()> {
        let store = self.store_ref()?;
        let mut notes = store.notes(run)?;
        let before = notes.len();
        notes.retain(|n| n != note);
        if notes.len() == before {
            return Err(Error::Job("the note is no longer stored".into()));
        }
        self.put_notes(run, notes)?;
        self.message = format!("deleted the note on steps {}", span_text(note.start, note.end));
        Ok(())
    }

    fn delete_flag(&mut self, run: RunId, flag: &Flag) -> Result<()> {
        let store = self.store_ref()?;
        let mut flags = store.flags(run)?;
        let before = flags.len();
        flags.retain(|f| f != flag);
        if flags.len() == before {
            return Err(Error::Job("the flag is no longer stored".into()));
        }
        self.put_flags(run, flags)?;
        self.message =
            format!("deleted the user flag on steps {}", span_text(flag.start, flag.end));
        Ok(())
    }

    fn put_notes(&mut self, run: RunId, mut notes: Vec<Note>) -> Result<()> {
        let store = self.store_ref()?;
        notes.sort_by_key(|n| (n.start, n.end));
        store.put_notes(run, &notes)?;
        store.flush()?;
        if let Some(v) = self.viewer.view.as_mut().filter(|v| v.run.id == run) {
            v.notes = notes;
        }
        Ok(())
    }

    fn put_flags(&mut self, run: RunId, mut flags: Vec<Flag>) -> Result<()> {
        let store = self.store_ref()?;
        flags.sort_by_key(|f| (f.start, f.end));
        store.put_flags(run, &flags)?;
        store.flush()?;
        let n = flags.len();
        if let Some(v) = self.viewer.view.as_mut().filter(|v| v.run.id == run) {
            v.flags = flags;
        }
        if let Some(e) = self.sessions.runs.iter_mut().find(|e| e.run.id == run) {
            e.flags = n;
        }
        Ok(())
    }
}
