//! Annotating a run in `App::update`: the visual selection (the span mark), opening the note
//! editor and the user-flag prompt on it, editing and deleting notes and user flags from the
//! trace cursor or the Flags list, and storing them: notes with `Store::put_notes`, user flags
//! in the run's flags (beside the automatic ones, which re-analysis keeps them next to).

use super::annotate::{FlagEditor, NoteEditor};
use super::app::{App, Overlay};
use super::error::{Error, Result};
use crate::export::annotate::span_text;
use crate::trace::{Flag, Note, Origin, RunId};

/// One row of the Flags list: a flag (index into the view's flags) or a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagRow {
    Flag(usize),
    Note(usize),
}

/// Whether step `i` lies in the half-open span (an empty span covers its start).
fn covers(start: u32, end: u32, i: usize) -> bool {
    let i = i as u32;
    start <= i && i < end.max(start + 1)
}

impl App {
    /// `a`, `F` and `r` on the trace.
    pub(super) fn update_annotate(&mut self, action: super::Action) {
        match action {
            super::Action::Note => self.open_note(),
            super::Action::UserFlag => self.open_user_flag(),
            super::Action::Resample => self.open_resample(),
            _ => {}
        }
    }

    /// The selected steps as a half-open span: the span mark to the cursor, else the cursor's
    /// token.
    pub fn selection(&self) -> Option<(u32, u32)> {
        let v = self.view.as_ref().filter(|v| !v.is_empty())?;
        let c = self.cursor.min(v.len() - 1);
        let (a, b) = match self.mark {
            Some(m) => (m.min(c), m.max(c)),
            None => (c, c),
        };
        Some((a as u32, b as u32 + 1))
    }

    /// The note at the cursor (index into the view's notes).
    pub fn note_at_cursor(&self) -> Option<usize> {
        let v = self.view.as_ref()?;
        v.notes.iter().position(|n| covers(n.start, n.end, self.cursor))
    }

    /// The user flag at the cursor (index into the view's flags).
    pub fn user_flag_at_cursor(&self) -> Option<usize> {
        let v = self.view.as_ref()?;
        v.flags.iter().position(|f| f.origin == Origin::User && covers(f.start, f.end, self.cursor))
    }

    /// The rows of the Flags list: flags grouped by kind, then the notes.
    pub fn flag_rows(&self) -> Vec<FlagRow> {
        let notes = self.view.as_ref().map_or(0, |v| v.notes.len());
        self.flag_order()
            .into_iter()
            .map(FlagRow::Flag)
            .chain((0..notes).map(FlagRow::Note))
            .collect()
    }

    /// `a`: a note on the selection; with no selection, edits the note at the cursor.
    pub(super) fn open_note(&mut self) {
        let Some(v) = self.view.as_ref().filter(|_| self.store.is_some()) else {
            self.message = "no run to annotate".into();
            return;
        };
        let run = v.run.id;
        if self.mark.is_none() {
            if let Some(n) = self.note_at_cursor().and_then(|i| v.notes.get(i)) {
                self.overlay = Some(Overlay::Note(NoteEditor::edit(run, n)));
                return;
            }
        }
        match self.selection() {
            Some((a, b)) => self.overlay = Some(Overlay::Note(NoteEditor::new(run, a, b))),
            None => self.message = "no token to annotate".into(),
        }
    }

    /// `F`: a user flag on the selection; with no selection, edits the user flag at the cursor.
    pub(super) fn open_user_flag(&mut self) {
        let Some(v) = self.view.as_ref().filter(|_| self.store.is_some()) else {
            self.message = "no run to flag".into();
            return;
        };
        let run = v.run.id;
        if self.mark.is_none() {
            if let Some(f) = self.user_flag_at_cursor().and_then(|i| v.flags.get(i)) {
                self.overlay = Some(Overlay::UserFlag(FlagEditor::edit(run, f)));
                return;
            }
        }
        match self.selection() {
            Some((a, b)) => self.overlay = Some(Overlay::UserFlag(FlagEditor::new(run, a, b))),
            None => self.message = "no token to flag".into(),
        }
    }

    /// `D` in the trace: deletes the note at the cursor, else the user flag there.
    pub(super) fn delete_at_cursor(&mut self) {
        let Some(v) = &self.view else { return };
        let result = if let Some(n) = self.note_at_cursor().and_then(|i| v.notes.get(i)).cloned() {
            self.delete_note(v.run.id, &n)
        } else if let Some(f) = self.user_flag_at_cursor().and_then(|i| v.flags.get(i)).cloned() {
            self.delete_flag(v.run.id, &f)
        } else {
            self.message = "no note or user flag at the cursor".into();
            return;
        };
        if let Err(e) = result {
            self.message = format!("could not delete: {e}");
        }
    }

    /// `e` on the Flags list: edits the selected note or user flag.
    pub(super) fn edit_selected_row(&mut self) {
        let Some(v) = &self.view else { return };
        let run = v.run.id;
        match self.flag_rows().get(self.flag_sel) {
            Some(FlagRow::Note(i)) => {
                if let Some(n) = v.notes.get(*i) {
                    self.overlay = Some(Overlay::Note(NoteEditor::edit(run, n)));
                }
            }
            Some(FlagRow::Flag(i)) => match v.flags.get(*i) {
                Some(f) if f.origin == Origin::User => {
                    self.overlay = Some(Overlay::UserFlag(FlagEditor::edit(run, f)));
                }
                Some(_) => {
                    self.message =
                        "automatic flags come from analysis; they cannot be edited".into()
                }
                None => {}
            },
            None => self.message = "nothing selected".into(),
        }
    }

    /// `d` on the Flags list: deletes the selected note or user flag.
    pub(super) fn delete_selected_row(&mut self) {
        let Some(v) = &self.view else { return };
        let run = v.run.id;
        let result = match self.flag_rows().get(self.flag_sel) {
            Some(FlagRow::Note(i)) => match v.notes.get(*i).cloned() {
                Some(n) => self.delete_note(run, &n),
                None => return,
            },
            Some(FlagRow::Flag(i)) => match v.flags.get(*i).cloned() {
                Some(f) if f.origin == Origin::User => self.delete_flag(run, &f),
                Some(_) => {
                    self.message =
                        "automatic flags come from analysis; they cannot be deleted".into();
                    return;
                }
                None => return,
            },
            None => return,
        };
        match result {
            Ok(()) => {
                let n = self.flag_rows().len();
                self.flag_sel = self.flag_sel.min(n.saturating_sub(1));
            }
            Err(e) => self.message = format!("could not delete: {e}"),
        }
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
        self.mark = None;
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
        self.mark = None;
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
        if let Some(v) = self.view.as_mut().filter(|v| v.run.id == run) {
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
        if let Some(v) = self.view.as_mut().filter(|v| v.run.id == run) {
            v.flags = flags;
        }
        if let Some(e) = self.runs.iter_mut().find(|e| e.run.id == run) {
            e.flags = n;
        }
        Ok(())
    }
}
