//! The data files of the terminal UI: the default keymap parses, has no conflicting bindings
//! and describes every action; every theme in `themes/` parses and defines every key; user
//! overrides merge as documented.

use thinkdbg::tui::action::{Action, ACTIONS};
use thinkdbg::tui::keymap::{Key, Keymap, Resolved, MODES};
use thinkdbg::tui::theme::{ThemeSet, BUILTIN, KEYS};

#[test]
fn default_keymap_parses_without_conflicts_and_covers_every_action() {
    let km = Keymap::merged(None).unwrap();
    for mode in MODES {
        assert_eq!(km.conflicts(mode), Vec::<(String, String)>::new(), "mode {mode}");
    }
    for (action, name, desc) in ACTIONS {
        assert!(!desc.is_empty(), "action '{name}' has no description");
        assert!(km.bindings.iter().any(|b| &b.action == action), "action '{name}' is not bound");
    }
    for b in &km.bindings {
        assert!(!b.desc.trim().is_empty(), "binding {} has no desc", b.chord_label());
    }
}

#[test]
fn chords_wait_for_their_second_key() {
    let km = Keymap::merged(None).unwrap();
    let g = Key::parse("g").unwrap();
    assert_eq!(km.resolve("trace", &[g]), Resolved::Pending);
    assert_eq!(km.resolve("trace", &[g, g]), Resolved::Run(Action::Start));
    assert_eq!(
        km.resolve("trace", &[Key::parse("down").unwrap()]),
        Resolved::Run(Action::LineDown)
    );
    assert_eq!(km.resolve("sessions", &[Key::parse("j").unwrap()]), Resolved::Run(Action::Down));
    assert_eq!(km.resolve("flags", &[Key::parse("q").unwrap()]), Resolved::Run(Action::Quit));
}

#[test]
fn a_user_keymap_overrides_and_bad_files_name_the_problem() {
    let user =
        Keymap::parse("[[trace]]\non = \"l\"\nrun = \"end\"\ndesc = \"mine\"\n", "user.toml")
            .unwrap();
    let km = Keymap::merged(Some(&user)).unwrap();
    assert_eq!(km.resolve("trace", &[Key::parse("l").unwrap()]), Resolved::Run(Action::End));
    assert_eq!(
        km.resolve("trace", &[Key::parse("right").unwrap()]),
        Resolved::Run(Action::NextToken)
    );
    let err = Keymap::parse("[[trace]]\non = \"l\"\nrun = \"fly\"\n", "user.toml").unwrap_err();
    assert!(err.to_string().contains("unknown action 'fly'"), "{err}");
    let err =
        Keymap::parse("[[trace]]\non = \"hyper-x\"\nrun = \"end\"\n", "user.toml").unwrap_err();
    assert!(err.to_string().contains("unknown key 'hyper-x'"), "{err}");
}

#[test]
fn every_theme_file_parses_and_defines_every_key() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("themes");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut builtin: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    builtin.sort();
    assert_eq!(files, builtin, "every file in themes/ is compiled in");
    let set = ThemeSet::with_dir(Some(&dir));
    for name in &files {
        let theme = set.load(name, false).unwrap_or_else(|e| panic!("{e}"));
        for (k, _) in KEYS {
            assert_ne!(
                theme.get(k),
                ratatui::style::Style::default(),
                "'{name}' leaves '{k}' unstyled"
            );
        }
        let plain = set.load(name, true).unwrap();
        for (k, _) in KEYS {
            let s = plain.get(k);
            assert!(s.fg.is_none() && s.bg.is_none(), "NO_COLOR '{name}' '{k}' has a colour");
        }
    }
    assert!(files.len() >= 4);
}

#[test]
fn theme_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "inherits = \"dark\"\n[styles]\n\"ui.text\" = \"nocolour\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("loop.toml"), "inherits = \"loop\"\n").unwrap();
    let set = ThemeSet::with_dir(Some(dir.path()));
    let err = set.load("bad", false).unwrap_err().to_string();
    assert!(err.contains("'ui.text'") && err.contains("'nocolour'"), "{err}");
    assert!(set.load("loop", false).unwrap_err().to_string().contains("cycle"));
}
