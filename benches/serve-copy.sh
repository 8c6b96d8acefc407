# Sourced by the HTTP benchmarks (serve-load.sh, write-one.sh): `serve_copy INDEX` serves a copy
# of the collection INDEX, named "scifact", with the binary $HS from a temporary data folder that
# is removed (and the server stopped) when the script exits. Sets WORK, PID and URL.
serve_copy() {
  WORK=$(mktemp -d)
  trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
  mkdir -p "$WORK/data"
  cp -r "$1" "$WORK/data/scifact"
  rm -f "$WORK/data/scifact/write.lock"
  "$HS" serve --data "$WORK/data" --addr 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
  PID=$!
  for _ in $(seq 600); do
    grep -q listening "$WORK/out" 2>/dev/null && break
    sleep 0.1
  done
  URL=$(sed -n 's/^listening on //p' "$WORK/out")
}
