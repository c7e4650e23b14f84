//! Turning key presses (and mouse events, `mouse`) into actions: chords wait for their next
//! key (the keymap resolves them for the current screen's mode), while a dialog is open or a
//! search or filter is typed keys are text, and the prompt editor and the note editor have
//! keys of their own. Reads `&App`, changes nothing in it. May import `app`, `action`, `keymap` and `components`.

use ratatui::crossterm::event::{self, KeyCode, KeyModifiers};

use super::action::Action;
use super::app::App;
use super::components::Overlay;
use super::keymap::{Key, Resolved};

/// Turns key presses into actions: chords wait for their next key, and while a search or
/// filter is typed, keys are text.
#[derive(Debug, Default)]
pub struct Dispatcher {
    pending: Vec<Key>,
}

impl Dispatcher {
    pub fn key(&mut self, app: &App, ev: event::KeyEvent) -> Option<Action> {
        if matches!(app.overlay, Some(Overlay::Editor(_))) {
            if let Some(a) = editor_key(ev) {
                return Some(a);
            }
        }
        let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
        if matches!(app.overlay, Some(Overlay::Note(_))) {
            // The note editor is multi-line: enter saves as in every dialog, alt-enter or
            // ctrl-j is a new line (as in the run dialog); ctrl-s saves too.
            let alt = ev.modifiers.contains(KeyModifiers::ALT);
            match ev.code {
                KeyCode::Enter if alt => return Some(Action::Input('\n')),
                KeyCode::Char('j') if ctrl => return Some(Action::Input('\n')),
                KeyCode::Char('s') if ctrl => return Some(Action::InputSubmit),
                KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => return None,
                _ => {}
            }
        }
        if app.overlay.is_some() {
            return match ev.code {
                KeyCode::Esc => Some(Action::Back),
                KeyCode::Enter => Some(Action::InputSubmit),
                KeyCode::Backspace => Some(Action::InputBackspace),
                KeyCode::Tab | KeyCode::Down => Some(Action::FieldNext),
                KeyCode::BackTab | KeyCode::Up => Some(Action::FieldPrev),
                KeyCode::Char('c') if ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::Quit)
                }
                KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::Input(c))
                }
                _ => None,
            };
        }
        if app.input.is_some() {
            return match ev.code {
                KeyCode::Esc => Some(Action::Back),
                KeyCode::Enter => Some(Action::InputSubmit),
                KeyCode::Backspace => Some(Action::InputBackspace),
                KeyCode::Char('c') if ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::Quit)
                }
                KeyCode::Char(c) if !ev.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::Input(c))
                }
                _ => None,
            };
        }
        let key = Key::from_event(ev);
        self.pending.push(key);
        let mode = app.screen.mode();
        match app.keymap.resolve(mode, &self.pending) {
            Resolved::Run(a) => {
                self.pending.clear();
                Some(a)
            }
            Resolved::Pending => None,
            Resolved::None => {
                // An unfinished chord followed by another key: try that key on its own.
                let retry = self.pending.len() > 1;
                self.pending.clear();
                if retry {
                    self.pending.push(key);
                    match app.keymap.resolve(mode, &self.pending) {
                        Resolved::Run(a) => {
                            self.pending.clear();
                            return Some(a);
                        }
                        Resolved::Pending => return None,
                        Resolved::None => self.pending.clear(),
                    }
                }
                None
            }
        }
    }
}

/// A mouse event as an action: a left click, the wheel; the rest is ignored.
pub fn mouse(ev: event::MouseEvent) -> Option<Action> {
    use event::{MouseButton, MouseEventKind};
    match ev.kind {
        MouseEventKind::Down(MouseButton::Left) => Some(Action::Click(ev.column, ev.row)),
        MouseEventKind::ScrollDown => Some(Action::Scroll(true)),
        MouseEventKind::ScrollUp => Some(Action::Scroll(false)),
        _ => None,
    }
}

/// The prompt editor's own keys: a new line (alt-enter, ctrl-j) and the text cursor.
fn editor_key(ev: event::KeyEvent) -> Option<Action> {
    use super::action::Caret;
    let caret = match ev.code {
        KeyCode::Enter if ev.modifiers.contains(KeyModifiers::ALT) => {
            return Some(Action::Input('\n'))
        }
        KeyCode::Char('j') if ev.modifiers.contains(KeyModifiers::CONTROL) => {
            return Some(Action::Input('\n'))
        }
        KeyCode::Up => Caret::Up,
        KeyCode::Down => Caret::Down,
        KeyCode::Left => Caret::Left,
        KeyCode::Right => Caret::Right,
        KeyCode::Home => Caret::Home,
        KeyCode::End => Caret::End,
        _ => return None,
    };
    Some(Action::Caret(caret))
}
