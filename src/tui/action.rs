//! Everything the user (or the engine) can ask the UI to do, as data. Key bindings name
//! actions by their `name`; `App::update` is the only place that acts on them. Depends on
//! `jobs` only (the event a job reports).

/// One thing to do. State changes happen only in `App::update(Action)`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    Help,
    Back,
    ScreenSessions,
    ScreenTrace,
    ScreenFlags,
    ScreenRouting,
    NextScreen,
    PrevScreen,
    Up,
    Down,
    PageUp,
    PageDown,
    Open,
    NextToken,
    PrevToken,
    NextWord,
    PrevWord,
    NextSentence,
    PrevSentence,
    NextStep,
    PrevStep,
    NextFlag,
    PrevFlag,
    NextLowConfidence,
    PrevLowConfidence,
    NextFork,
    PrevFork,
    CycleMarker,
    LineDown,
    LineUp,
    Start,
    End,
    Search,
    SearchNext,
    SearchPrev,
    CycleColour,
    NextLayer,
    PrevLayer,
    Mark,
    CycleTheme,
    ScreenCompare,
    ScreenExperiments,
    /// The experiments screen's run list: the next sort order.
    CycleSort,
    EditRerun,
    Fork,
    Compare,
    CompareMark,
    CancelRun,
    JumpDivergence,
    NextDivergence,
    PrevDivergence,
    /// The compare screen's step view (the step map) or token view.
    ToggleStepView,
    ExportDialog,
    ImportDialog,
    Note,
    UserFlag,
    EditAnnotation,
    DeleteAnnotation,
    /// Restores the note or user flag deleted last.
    Undo,
    Resample,
    ResamplePanel,
    /// The experiments screen: run a spec (a new experiment), or resume one.
    ExperimentNew,
    ExperimentResume,
    /// Scores the run's text with the model (teacher forcing) into a child run.
    Score,
    /// Turns mouse capture off (the terminal selects text) or on.
    ToggleMouse,
    /// The inspector's layers view (logit lens) for the token at the cursor, on / off.
    ToggleLens,
    /// Runs the answer-now probe on the run shown (its row on the timeline).
    Probe,
    /// Not bindable: the terminal's new size.
    Resize(u16, u16),
    /// Not bindable: a left click at (column, row).
    Click(u16, u16),
    /// Not bindable: the mouse wheel, down (`true`) or up.
    Scroll(bool),
    /// Not bindable: a character typed into the search / filter line.
    Input(char),
    /// Not bindable: backspace in the search / filter line.
    InputBackspace,
    /// Not bindable: Enter in the search / filter line.
    InputSubmit,
    /// Not bindable: the next field of the open editor (tab).
    FieldNext,
    /// Not bindable: the previous field of the open editor (shift-tab).
    FieldPrev,
    /// Not bindable: what a producer reported about a live run (the model load included),
    /// whether the UI started it or `record --tui` did.
    Job(Box<super::jobs::JobEvent>),
    /// Not bindable: the logit lens at a step, computed on the engine thread.
    Lens(Box<super::jobs::LensReply>),
    /// Not bindable: the answer-now probe of a run ended.
    ProbeDone(Box<super::jobs::ProbeReply>),
    /// Not bindable: the text cursor of the open editor (arrows, home, end).
    Caret(Caret),
}

/// Where the editor's text cursor goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caret {
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
}

/// Every action with its name (as written in `keymap.toml`) and its description (shown in
/// help). Adding an action means adding it here; the keymap test checks the table.
pub const ACTIONS: &[(Action, &str, &str)] = &[
    (Action::Quit, "quit", "Quit thinkdbg"),
    (Action::Help, "help", "Show or hide this help"),
    (Action::Back, "back", "Close the overlay, cancel the search, or go back"),
    (Action::ScreenSessions, "screen_sessions", "Sessions screen"),
    (Action::ScreenTrace, "screen_trace", "Trace screen (with inspector and timeline)"),
    (Action::ScreenFlags, "screen_flags", "Flags screen"),
    (Action::ScreenRouting, "screen_routing", "Routing screen (MoE runs)"),
    (Action::NextScreen, "next_screen", "Next screen"),
    (Action::PrevScreen, "prev_screen", "Previous screen"),
    (Action::Up, "up", "Move the selection up"),
    (Action::Down, "down", "Move the selection down"),
    (Action::PageUp, "page_up", "Page up"),
    (Action::PageDown, "page_down", "Page down"),
    (Action::Open, "open", "Open the selected run or jump to the selected flag"),
    (Action::NextToken, "next_token", "Next token"),
    (Action::PrevToken, "prev_token", "Previous token"),
    (Action::NextWord, "next_word", "Next word"),
    (Action::PrevWord, "prev_word", "Previous word"),
    (Action::NextSentence, "next_sentence", "Next sentence"),
    (Action::PrevSentence, "prev_sentence", "Previous sentence"),
    (Action::NextStep, "next_step", "Next reasoning step"),
    (Action::PrevStep, "prev_step", "Previous reasoning step"),
    (Action::NextFlag, "next_flag", "Next flag"),
    (Action::PrevFlag, "prev_flag", "Previous flag"),
    (Action::NextLowConfidence, "next_low", "Next low-confidence token"),
    (Action::PrevLowConfidence, "prev_low", "Previous low-confidence token"),
    (Action::NextFork, "next_fork", "Next forking token (highest entropy)"),
    (Action::PrevFork, "prev_fork", "Previous forking token"),
    (
        Action::CycleMarker,
        "cycle_marker",
        "Highlight the cognitive experts of: think / backtrack / language switch / off",
    ),
    (Action::LineDown, "line_down", "Token one line down"),
    (Action::LineUp, "line_up", "Token one line up"),
    (Action::Start, "start", "Start of the run"),
    (Action::End, "end", "End of the run"),
    (Action::Search, "search", "Search (filter on the sessions screen)"),
    (Action::SearchNext, "search_next", "Next search match"),
    (Action::SearchPrev, "search_prev", "Previous search match"),
    (
        Action::CycleColour,
        "cycle_colour",
        "Colour by logprob / entropy / expert / syntax / confidence",
    ),
    (Action::NextLayer, "next_layer", "Next MoE layer (expert colouring)"),
    (Action::PrevLayer, "prev_layer", "Previous MoE layer (expert colouring)"),
    (Action::Mark, "mark", "Visual selection: start at the cursor, or clear it"),
    (Action::CycleTheme, "cycle_theme", "Next theme"),
    (Action::ScreenCompare, "screen_compare", "Compare screen"),
    (
        Action::ScreenExperiments,
        "screen_experiments",
        "Experiments screen (reports of `thinkdbg experiment`)",
    ),
    (Action::CycleSort, "cycle_sort", "Sort a variant's runs by sample, flags, answer or tokens"),
    (Action::EditRerun, "edit_rerun", "Edit the prompt and settings, then re-run"),
    (Action::Fork, "fork", "Fork at the cursor: pick an alternative or type a token"),
    (Action::Compare, "compare", "Compare with the marked run, else with the parent"),
    (Action::CompareMark, "compare_mark", "Mark this run as side A of a comparison"),
    (Action::CancelRun, "cancel_run", "Cancel the run in progress"),
    (Action::JumpDivergence, "jump_divergence", "Jump to the first divergence"),
    (Action::NextDivergence, "next_divergence", "Next divergence (step view: next changed step)"),
    (Action::PrevDivergence, "prev_divergence", "Previous divergence (step view: previous one)"),
    (Action::ToggleStepView, "toggle_step_view", "Compare: step map / token view"),
    (Action::ExportDialog, "export", "Export this run: Markdown, HTML or JSONL to a file"),
    (Action::ImportDialog, "import", "Import a trace: OpenAI log, SSE capture, dataset, text"),
    (Action::Note, "note", "Note on the selection (or edit the note at the cursor)"),
    (Action::UserFlag, "user_flag", "User flag on the selection (or edit the one at the cursor)"),
    (Action::EditAnnotation, "edit_annotation", "Edit the selected note or user flag"),
    (Action::DeleteAnnotation, "delete_annotation", "Delete a note or user flag"),
    (Action::Undo, "undo", "Restore the note or user flag deleted last"),
    (Action::ToggleMouse, "toggle_mouse", "Mouse on / off (off: the terminal selects text)"),
    (Action::Resample, "resample", "Resample N continuations from the reasoning step"),
    (Action::ResamplePanel, "resample_panel", "Show the last resample's panel"),
    (Action::ExperimentNew, "experiment_new", "Run an experiment spec (TOML) on the UI's model"),
    (
        Action::ExperimentResume,
        "experiment_resume",
        "Resume an experiment: redo what did not complete",
    ),
    (Action::Score, "score", "Score this run's text with the model (its view of every token)"),
    (Action::Probe, "probe", "Answer-now probe of the run: ask for the answer at each step"),
    (
        Action::ToggleLens,
        "toggle_lens",
        "Inspector: layers view (logit lens) of the cursor's token",
    ),
];

impl Action {
    pub fn from_name(name: &str) -> Option<Action> {
        ACTIONS.iter().find(|(_, n, _)| *n == name).map(|(a, _, _)| a.clone())
    }

    pub fn name(&self) -> &'static str {
        ACTIONS.iter().find(|(a, _, _)| a == self).map_or("", |(_, n, _)| n)
    }

    pub fn description(&self) -> &'static str {
        ACTIONS.iter().find(|(a, _, _)| a == self).map_or("", |(_, _, d)| d)
    }
}
