#!/usr/bin/env bash
# The package as users install it: build the wheel, install it into a fresh venv WITHOUT extras, and run the
# emulator, a 3-job run against it and `wanbatch report`, from a folder outside the checkout (so nothing is
# imported from the source tree). Every import the installed package makes must be a declared dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
work=$(mktemp -d)
emu_pid=""
trap '[ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null; rm -rf "$work"' EXIT
"$PY" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip wheel -q --no-deps -w "$work/dist" .
"$work/venv/bin/python" -m pip install -q "$work"/dist/wanbatch-*.whl
cd "$work"
bin="$work/venv/bin"
"$bin/wanbatch" --version
"$bin/wanbatch" emulator --port 0 --speed 3600 --task-time 1800 --retention 1e9 --url-ttl 1e9 > emulator.out 2>&1 &
emu_pid=$!
for _ in $(seq 1 100); do grep -q "listening on" emulator.out && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*/api/v1' emulator.out | head -1)
[ -n "$url" ] || { echo "the emulator did not start:"; cat emulator.out; exit 1; }
cat > smoke.yaml <<'YAML'
version: 1
name: smoke
defaults: {model: wan2.6-t2v, size: "1280*720", duration: 2, prompt_extend: false}
jobs:
  - {name: one, prompt: A lighthouse at dusk.}
  - {name: two, prompt: A harbour at dawn.}
  - {name: three, prompt: A mill in the rain.}
YAML
DASHSCOPE_API_KEY=sk-wheel-smoke-test XDG_STATE_HOME="$work/state" "$bin/wanbatch" run smoke.yaml --out out --base-url "$url" -q
[ "$(ls out/videos/*.mp4 | wc -l)" -eq 3 ] || { echo "expected 3 videos"; exit 1; }
"$bin/wanbatch" report out
[ -s out/index.html ] || { echo "no gallery"; exit 1; }
"$bin/wanbatch" status out
echo "wheel smoke: ok"
