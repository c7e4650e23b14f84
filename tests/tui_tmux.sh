#!/usr/bin/env bash
# Drives the real thinkdbg binary in a tmux pane, as a user would: it opens the UI on a new
# store (the samples are imported on first start), runs `ls` and `import` from another shell
# while the UI holds the store (the UI's list shows the import), opens a run, steps through tokens, jumps to
# a flag from the Flags screen, opens help, annotates a span (note and user flag) and exports
# it to Markdown, quits, and checks the captured screens and that
# the terminal is restored (normal screen, cursor shown, no mouse mode, same stty settings).
# Then it imports tests/fixtures/invisible/invisible.jsonl (tokens U+200D, U+200B, U+FEFF, a
# lone U+0301, ESC, U+202E; an OSC sequence in the model's arch and quant), steps over every
# token and checks that the inspector shows the step under the cursor and that no row of the
# real terminal is shifted (issue 16, item 6).
# Usage: tests/tui_tmux.sh [BINARY] (default target/debug/thinkdbg). Screens are kept in
# $TMUX_CHECK_OUT (default a temporary directory) for a look.
set -euo pipefail

BIN=$(realpath "${1:-target/debug/thinkdbg}")
FIXTURE=$(realpath "$(dirname "$0")/fixtures/invisible/invisible.jsonl")
export LC_ALL=C.UTF-8
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

# The UI holds the store: commands from another shell are handed to it, and its list shows
# what they add (issue 17, item 5).
"$BIN" --store "$WORK/store" ls > "$WORK/ls_beside" 2>&1 || fail "ls beside the UI: $(cat "$WORK/ls_beside")"
grep -qF "A farmer has 17 sheep" "$WORK/ls_beside" || fail "ls beside the UI lists nothing"
"$BIN" --store "$WORK/store" import "$FIXTURE" > "$WORK/import_beside" 2>&1 || fail "import beside the UI: $(cat "$WORK/import_beside")"
wait_for "Sessions · 5 runs" sessions_refreshed

$T send-keys -t check Enter
wait_for "Inspector" trace
$T send-keys -t check l l l
wait_for "step 3 of 0–136" trace_stepped
# Mouse capture is on while the UI runs; M turns it off (the terminal selects text) and on.
[ "$($T display -p -t check '#{mouse_any_flag}')" = 1 ] || fail "mouse capture not on"
$T send-keys -t check M
wait_for "mouse off" mouse_off
[ "$($T display -p -t check '#{mouse_any_flag}')" = 0 ] || fail "M left mouse capture on"
$T send-keys -t check M
wait_for "mouse on" mouse_on
$T send-keys -t check j
wait_for "Timeline" trace_line

# Flags screen: the first flag's start step, then Enter jumps there in the trace.
$T send-keys -t check 3
wait_for "Flags · " flags
start=$(grep -oE 'steps [0-9]+' "$OUT/flags.txt" | head -1 | grep -oE '[0-9]+')
[ -n "$start" ] || fail "no flag listed"
$T send-keys -t check Enter
wait_for "step $start of 0–136" trace_flag

$T send-keys -t check ']'
wait_for "steps " trace_next_flag

$T send-keys -t check '?'
wait_for "Next reasoning step" help
grep -qF "Next reasoning step" "$OUT/help.txt" || fail "help does not list the trace keys"
$T send-keys -t check Escape
sleep 0.3

# Annotate: a two-line note on a visual selection (ctrl-j a new line, enter saves), a user flag on the cursor's
# token, both listed on the Flags screen, then a Markdown export that carries them.
$T send-keys -t check 2 g g v l l a
wait_for "enter save" note_editor
$T send-keys -t check -l "tmux-note"
$T send-keys -t check C-j
$T send-keys -t check -l "second line"
$T send-keys -t check Enter
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

# Zero-width and control characters. A row the terminal drew in fewer columns than the
# buffer has its right-hand panes shifted left: the border `││` between the two top panes
# must be at the same display column (wc -L counts columns) on each of their rows.
same_columns() {
    local widths
    widths=$(awk 'NR > 2 && /^└/ { exit } NR > 2' "$1" | grep -F '││' | sed 's/││.*//' | while IFS= read -r l; do printf '%s' "$l" | wc -L; done | sort -u)
    [ "$(printf '%s\n' "$widths" | wc -l)" = 1 ] || fail "rows shifted in $1: border at columns $(echo $widths)"
}
"$BIN" import "$FIXTURE" --store "$WORK/zstore" > /dev/null 2>&1 || fail "could not import $FIXTURE"
$T send-keys -t check "clear; THINKDBG_CONFIG=$WORK/cfg $BIN --store $WORK/zstore --log-file $WORK/zlog 2>$WORK/zstderr; echo EXIT=\$? > $WORK/zexit" Enter
wait_for "Sessions · 1 runs" z_sessions
for shown in "llama␛]0;pwned␇" "Q4_1␛]0;pwned␇"; do
    grep -qF "$shown" "$OUT/z_sessions.txt" || fail "arch or quant: no '$shown'"
done
same_columns "$OUT/z_sessions.txt"
$T send-keys -t check Enter
for i in $(seq 0 21); do
    wait_for "step   $i  id $((3200 + 7 * i))" "z_step$i"
    same_columns "$OUT/z_step$i.txt"
    $T send-keys -t check l
done
grep -qF "Zero⟨U+200D⟩ width⟨U+200B⟩ space⟨U+FEFF⟩ e◌́ esc:␛[2J" "$OUT/z_step21.txt" || fail "invisible characters not shown"
$T send-keys -t check q
for _ in $(seq 1 100); do [ -f "$WORK/zexit" ] && break; sleep 0.1; done
grep -qx "EXIT=0" "$WORK/zexit" || fail "second run: exit status $(cat "$WORK/zexit" 2>/dev/null): $(cat "$WORK/zstderr")"
echo "tui_tmux: ok (screens in $OUT)"
