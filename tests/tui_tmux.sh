#!/usr/bin/env bash
# Drives the real thinkdbg binary in a tmux pane, as a user would: it opens the UI on a new
# store (the samples are imported on first start), opens a run, steps through tokens, jumps to
# a flag from the Flags screen, opens help, annotates a span (note and user flag) and exports
# it to Markdown, quits, and checks the captured screens and that
# the terminal is restored (normal screen, cursor shown, no mouse mode, same stty settings).
# Usage: tests/tui_tmux.sh [BINARY] (default target/debug/thinkdbg). Screens are kept in
# $TMUX_CHECK_OUT (default a temporary directory) for a look.
set -euo pipefail

BIN=$(realpath "${1:-target/debug/thinkdbg}")
OUT=${TMUX_CHECK_OUT:-$(mktemp -d)}
mkdir -p "$OUT"
WORK=$(mktemp -d)
SOCK="thinkdbg-check-$$"
T="tmux -L $SOCK"
cleanup() { $T kill-server 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

fail() { echo "tui_tmux: FAIL: $*" >&2; echo "screens in $OUT" >&2; exit 1; }

# Wait until the pane shows $1 (a fixed string), saving the screen as $2.
wait_for() {
    local want=$1 name=$2
    for _ in $(seq 1 100); do
        $T capture-pane -p -t check > "$OUT/$name.txt" 2>/dev/null || true
        if grep -qF -- "$want" "$OUT/$name.txt"; then return 0; fi
        sleep 0.1
    done
    fail "screen '$name' never showed '$want'"
}

$T new-session -d -s check -x 120 -y 40 "bash --norc --noprofile"
$T send-keys -t check "stty -a > $WORK/stty.before; THINKDBG_CONFIG=$WORK/cfg $BIN --store $WORK/store --log-file $WORK/log 2>$WORK/stderr; echo EXIT=\$? > $WORK/exit; stty -a > $WORK/stty.after; clear; echo shell-is-back" Enter

wait_for "Sessions · 4 runs" sessions
grep -qF "A farmer has 17 sheep" "$OUT/sessions.txt" || fail "sample session missing"
[ "$($T display -p -t check '#{alternate_on}')" = 1 ] || fail "UI not on the alternate screen"

$T send-keys -t check Enter
wait_for "Inspector" trace
$T send-keys -t check l l l
wait_for "tok 4/137" trace_stepped
$T send-keys -t check j
wait_for "Timeline" trace_line

# Flags screen: the first flag's start step, then Enter jumps there in the trace.
$T send-keys -t check 3
wait_for "Flags · " flags
start=$(grep -oE 'steps +[0-9]+\.\.' "$OUT/flags.txt" | head -1 | grep -oE '[0-9]+')
[ -n "$start" ] || fail "no flag listed"
$T send-keys -t check Enter
wait_for "tok $((start + 1))/137" trace_flag

$T send-keys -t check ']'
wait_for "tok " trace_next_flag

$T send-keys -t check '?'
wait_for "Next reasoning step" help
grep -qF "Next reasoning step" "$OUT/help.txt" || fail "help does not list the trace keys"
$T send-keys -t check Escape
sleep 0.3

# Annotate: a two-line note on a visual selection (ctrl-s saves), a user flag on the cursor's
# token, both listed on the Flags screen, then a Markdown export that carries them.
$T send-keys -t check 2 g g v l l a
wait_for "ctrl-s save" note_editor
$T send-keys -t check -l "tmux-note"
$T send-keys -t check Enter
$T send-keys -t check -l "second line"
$T send-keys -t check C-s
wait_for "note saved on steps 0–2" note_saved
$T send-keys -t check l l l l F
wait_for "User flag" flag_prompt
$T send-keys -t check -l "tmux-flag"
$T send-keys -t check Enter
wait_for "user flag saved" flag_saved
$T send-keys -t check 3
wait_for "notes (1)" flags_annotated
grep -qF "user: tmux-flag" "$OUT/flags_annotated.txt" || fail "the user flag is not listed"
$T send-keys -t check x
wait_for "Export" export_dialog
for _ in $(seq 1 40); do $T send-keys -t check BSpace; done
$T send-keys -t check -l "$WORK/annotated.md"
$T send-keys -t check Enter
wait_for "wrote '" exported
grep -qF "tmux-note" "$WORK/annotated.md" || fail "the note is not in the export"
grep -qF "tmux-flag" "$WORK/annotated.md" || fail "the user flag is not in the export"

$T send-keys -t check q
for _ in $(seq 1 100); do [ -f "$WORK/exit" ] && break; sleep 0.1; done
[ -f "$WORK/exit" ] || fail "thinkdbg did not exit on q"
grep -qx "EXIT=0" "$WORK/exit" || fail "exit status $(cat "$WORK/exit"): $(cat "$WORK/stderr")"
wait_for "shell-is-back" after
[ "$($T display -p -t check '#{alternate_on}')" = 0 ] || fail "alternate screen left on"
[ "$($T display -p -t check '#{cursor_flag}')" = 1 ] || fail "cursor left hidden"
[ "$($T display -p -t check '#{mouse_any_flag}')" = 0 ] || fail "mouse mode left on"
diff "$WORK/stty.before" "$WORK/stty.after" > /dev/null || fail "terminal modes changed: $(diff "$WORK/stty.before" "$WORK/stty.after")"
grep -qF "imported 4 sample run(s)" "$WORK/stderr" || fail "samples not imported on first start"
echo "tui_tmux: ok (screens in $OUT)"
