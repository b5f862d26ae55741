#!/usr/bin/env bash
# make fuzz: each target for $1 seconds (default 60) on the nightly toolchain, seeded with the
# repo's fixtures; then one line per target: executions, executions a second, crashes.
# A crash leaves its input in tests/fuzz/artifacts/<target>/ and makes this exit 1 (this run and
# the next ones, until the input is removed with the fix and its regression test).
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
dir=tests/fuzz
targets=(domain_event stream_record queue_message client_message field_values request_body query token)
seed() {  # target, fixture files...
  local t=$1; shift
  mkdir -p "$dir/corpus/$t"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/corpus/$t/seed-$(basename "$f")"; done
}
seed domain_event events/domain/*.json
seed queue_message events/domain/*.json
# The bodies inside the recorded events (an SQS record's body, an HTTP request's body), and a
# stream batch built from the golden events, as the relay receives them.
python3 - "$dir/corpus" <<'PY'
import glob, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
def put(target, name, text):
    (out / target).mkdir(parents=True, exist_ok=True)
    (out / target / name).write_text(text)
for f in glob.glob("events/*-worker/*.json"):
    for i, r in enumerate(json.load(open(f)).get("Records", [])):
        put("queue_message", f"seed-{pathlib.Path(f).stem}-{i}", r.get("body", ""))
for f in glob.glob("events/*-api/*.json"):
    body = json.load(open(f)).get("body")
    if body:
        put("request_body", f"seed-{pathlib.Path(f).stem}", body)
records = [{"eventID": str(i), "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"NewImage": {"payload": {"S": open(f).read()}}, "SequenceNumber": str(i), "StreamViewType": "NEW_IMAGE"}}
           for i, f in enumerate(sorted(glob.glob("events/domain/*.json")))]
put("stream_record", "seed-golden-events", json.dumps({"Records": records}))
PY
cargo +nightly fuzz build --fuzz-dir "$dir" >/dev/null || exit 1
failed=0
report=()
for t in "${targets[@]}"; do
  log=$(mktemp)
  mkdir -p "$dir/artifacts/$t"
  cargo +nightly fuzz run --fuzz-dir "$dir" "$t" -- -max_total_time="$seconds" -max_len=65536 \
    -artifact_prefix="$dir/artifacts/$t/" >"$log" 2>&1
  code=$?
  runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
  crashes=$(find "$dir/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
  if [ "$code" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    tail -40 "$log"
  fi
  report+=("$(printf '%-16s %12s runs  %8s/s  %s crash(es)' "$t" "${runs:-?}" "$(( ${runs:-0} / seconds ))" "$crashes")")
  rm -f "$log"
done
printf '\nmake fuzz, %s s a target:\n' "$seconds"
printf '  %s\n' "${report[@]}"
exit $failed
