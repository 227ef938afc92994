#!/usr/bin/env bash
# tests/fuzz/run.sh: builds the libFuzzer targets (clang++, -DSLIRPNETD_FUZZ=ON) and runs each one
# for N seconds on its seed corpus; fails if any target crashes, leaks, times out or fails to build.
#
#   tests/fuzz/run.sh [--seconds N] [--build-dir DIR] [TARGET...]
#     N        seconds per target (default 30; env FUZZ_SECONDS)
#     DIR      build directory (default <repo>/build-fuzz; env FUZZ_BUILD_DIR)
#     TARGET   fuzz_api fuzz_options fuzz_slirp fuzz_guard (default: all)
#
# Before fuzzing, every file under tests/fuzz/regressions/<target>/ is replayed once (it must not
# crash). New inputs go to DIR/corpus/<target>/ (the checked-in seeds are only read); crashes are
# saved as DIR/artifacts/<target>/crash-* and reproduce with `DIR/fuzz/<target> FILE`.
# fuzz_slirp puts itself into private user/net/mount namespaces before its first input, so it
# needs unprivileged user namespaces or root; nothing it does reaches the host's network.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fuzz_dir=$repo/tests/fuzz
seconds=${FUZZ_SECONDS:-30}
build=${FUZZ_BUILD_DIR:-$repo/build-fuzz}
targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    fuzz_*) targets+=("$1"); shift ;;
    *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
((${#targets[@]})) || targets=(fuzz_api fuzz_options fuzz_slirp fuzz_guard)
[[ $seconds =~ ^[0-9]+$ ]] || { echo "run.sh: --seconds needs a number" >&2; exit 2; }

declare -A max_len=([fuzz_api]=8192 [fuzz_options]=4096 [fuzz_slirp]=160000 [fuzz_guard]=4096)

mkdir -p "$build"
cmake_args=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLIRPNETD_FUZZ=ON -DBUILD_TESTING=OFF)
cmake -S "$repo" -B "$build" "${cmake_args[@]}" >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; echo "run.sh: cmake configure failed" >&2; exit 1; }
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$build/build.log" 2>&1 ||
  { tail -50 "$build/build.log" >&2; echo "run.sh: build failed" >&2; exit 1; }

failed=()
for t in "${targets[@]}"; do
  bin=$build/fuzz/$t
  work=$build/corpus/$t
  art=$build/artifacts/$t
  mkdir -p "$work" "$art"
  common=(-max_len="${max_len[$t]}" -timeout=25 -rss_limit_mb=4096 -artifact_prefix="$art/")

  regs=("$fuzz_dir/regressions/$t"/*)
  if [[ -e ${regs[0]} ]]; then
    echo "== $t: replaying ${#regs[@]} regression input(s)"
    if ! timeout --kill-after=10 600 "$bin" "${common[@]}" "${regs[@]}" >"$build/$t.regressions.log" 2>&1; then
      tail -40 "$build/$t.regressions.log" >&2
      failed+=("$t (regression)")
      continue
    fi
  fi

  echo "== $t: fuzzing for ${seconds}s"
  log=$build/$t.log
  status=0
  timeout --kill-after=10 $((seconds + 120)) "$bin" "${common[@]}" -max_total_time="$seconds" \
    -print_final_stats=1 "$work" "$fuzz_dir/corpus/$t" >"$log" 2>&1 || status=$?
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | sed 's/^/   /' || true
  grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1 | sed 's/^/   /' || true
  if ((status != 0)); then
    grep -E -A30 '^==[0-9]+==ERROR|^SUMMARY|deadly signal|fuzz_[a-z]+: ' "$log" | head -60 >&2 || tail -40 "$log" >&2
    echo "   $t FAILED (status $status); log: $log; artifacts: $art" >&2
    failed+=("$t")
  fi
done

if ((${#failed[@]})); then
  echo "FAIL: ${failed[*]}" >&2
  exit 1
fi
echo "PASS: ${targets[*]} (${seconds}s each)"
