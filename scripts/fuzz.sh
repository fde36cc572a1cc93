#!/usr/bin/env bash
# Coverage-guided fuzzing (AFL++ through cargo-afl, on the stable toolchain) of what reads
# untrusted bytes: SQS message bodies (fuzz/src/bin/notification.rs), configuration files
# (config.rs) and image files (decode.rs). Usage: scripts/fuzz.sh [SECONDS per target, default
# 600]. Installs cargo-afl if needed, builds the targets, runs each from its seeds, prints
# executions, corpus, coverage, crashes and hangs per target, and fails on any crash or hang
# (reproduce one with `fuzz/target/release/TARGET < out/fuzz/TARGET/default/crashes/FILE`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"

command -v cargo-afl >/dev/null || cargo install cargo-afl --version 0.18.2 --locked
(cd fuzz && cargo afl build --release --quiet)

out="$PWD/out/fuzz"
rm -rf "$out"
mkdir -p "$out/seeds/config"
cp config/*.toml "$out/seeds/config/"
# No core dumps to wait for, no CPU governor to check, no screen.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1

status=0
printf '| target | seconds | executions | exec/s | corpus | edge coverage | crashes | hangs |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for target in notification config decode; do
    seeds="fuzz/seeds/$target"
    [ "$target" = config ] && seeds="$out/seeds/config"
    cargo afl fuzz -V "$seconds" -i "$seeds" -o "$out/$target" "fuzz/target/release/$target" \
        >"$out/$target.log" 2>&1 || { echo "afl-fuzz failed for $target: see $out/$target.log"; exit 1; }
    stats="$out/$target/default/fuzzer_stats"
    get() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$stats"; }
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$target" "$seconds" "$(get execs_done)" \
        "$(get execs_per_sec)" "$(get corpus_count)" "$(get bitmap_cvg)" "$(get saved_crashes)" \
        "$(get saved_hangs)"
    if [ "$(get saved_crashes)" != 0 ] || [ "$(get saved_hangs)" != 0 ]; then
        status=1
    fi
done
exit "$status"
