# Sourced by the benchmark scripts: `measure LABEL COMMAND...` runs COMMAND under GNU time and
# prints its wall seconds, peak RSS and bytes written (GNU time's %O counts 512-byte blocks);
# its stdout is kept in "$OUT/last.out". Needs $OUT set and /usr/bin/time (Debian's `time`).
measure() {
  local label="$1"; shift
  /usr/bin/time -f "%e %M %O" -o "$OUT/time.txt" "$@" > "$OUT/last.out" 2> "$OUT/last.err" || {
    cat "$OUT/last.err" >&2; exit 1; }
  read -r secs kb blocks < "$OUT/time.txt"
  printf '%-34s %8.2f s  peak RSS %7.1f MiB  written %9.1f MiB\n' "$label" "$secs" \
    "$(echo "$kb / 1024" | bc -l)" "$(echo "$blocks * 512 / 1048576" | bc -l)"
}
