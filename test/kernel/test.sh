#!/usr/bin/env bash
# Compiles csi-thin's tests and runs them inside a real kernel with
# device-mapper (see run), as root, with two block devices attached for the
# tests of pools on block devices. Every package whose tests call
# kerneltest.Require is included; the benchmarks in its kernel test files run too. Test binaries are
# built with the tag failpoints, which the crash tests need; the csi-thin
# binary the flow tests run is built as released, without it.
#
# Environment:
#   KERNEL_TEST_RUN    only tests matching this regexp (go test -run)
#   KERNEL_TEST_BENCH  benchmarks matching this regexp (default: all, or none
#                      when KERNEL_TEST_RUN picks tests; "none" skips them)
#   KERNEL_TEST_BENCHTIME  go test -benchtime for the benchmarks (default 1000x)
#   KERNEL_TEST_RACE   1 to build with the race detector. Off by default: its
#                      runtime maps memory at 0x200000000000, above what a
#                      User-Mode Linux process can address, and fails to start
#                      there. The host's unit tests run with -race.
#   KERNEL_TEST_PKGS   packages to test instead of the discovered ones
# It sets KERNEL_SCRATCH_DIR, a directory on disk for the tests' large files.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD

discover() {
  git ls-files -co --exclude-standard -- '*_test.go' | xargs -r grep -l 'kerneltest.Require' |
    xargs -r -n1 dirname | sort -u | sed 's|^|./|'
}
pkgs=${KERNEL_TEST_PKGS:-$(discover)}
if [ -z "$pkgs" ]; then
  echo "no packages have kernel tests" >&2
  exit 1
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/csi-thin-ktest.XXXXXX")
trap 'rm -rf "$out"' EXIT
race=
[ "${KERNEL_TEST_RACE:-0}" = 1 ] && race=-race

for p in $pkgs; do
  bin="$out/$(echo "${p#./}" | tr / _).test"
  echo "build $p"
  go test -c $race -tags failpoints -o "$bin" "$p"
  # Benchmarks run in the kernel only where the package has them in its
  # kernel test files; the others measure host code on synthetic data.
  kbench=0
  if git ls-files -co --exclude-standard -- "$p/*_kernel_test.go" | xargs -r grep -l '^func Benchmark' | grep -q .; then
    kbench=1
  fi
  echo "$p $bin $kbench" >> "$out/list"
done

# The flow tests run the driver as its own process, to restart and kill it.
echo "build ./cmd/csi-thin"
CGO_ENABLED=0 go build -o "$out/csi-thin" ./cmd/csi-thin
export CSI_THIN_BINARY="$out/csi-thin"

truncate -s 2G "$out/ubd-data.img"
# Room on disk for tests that write more than the kernel's memory (its
# temporary directory is a tmpfs): kerneltest.ScratchDir.
mkdir "$out/scratch"
export KERNEL_SCRATCH_DIR="$out/scratch"
truncate -s 128M "$out/ubd-meta.img"

cat > "$out/guest.sh" <<'GUEST'
#!/bin/sh
# Runs inside the kernel: each package's test binary in its own directory.
list=$1 top=$2
status=0
while read -r pkg bin kbench; do
  echo "=== package $pkg"
  bench=${KERNEL_TEST_BENCH:-.}
  [ "$kbench" = 1 ] || bench='^$'
  (cd "$top/$pkg" && "$bin" -test.v -test.timeout 30m ${KERNEL_TEST_RUN:+-test.run "$KERNEL_TEST_RUN"} \
     -test.bench "$bench" -test.benchtime "${KERNEL_TEST_BENCHTIME:-1000x}" -test.benchmem=false) || status=1
done < "$list"
exit $status
GUEST
chmod +x "$out/guest.sh"
if [ "${KERNEL_TEST_BENCH:-}" = none ] || { [ -n "${KERNEL_TEST_RUN:-}" ] && [ -z "${KERNEL_TEST_BENCH:-}" ]; }; then
  export KERNEL_TEST_BENCH='^$'
fi

set +e
test/kernel/run -b "$out/ubd-data.img" -b "$out/ubd-meta.img" -- "$out/guest.sh" "$out/list" "$top" | tee "$out/log"
rc=${PIPESTATUS[0]}
set -e

passed=$(grep -cE '^\s*--- PASS' "$out/log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$out/log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$out/log" || true)
echo
echo "kernel: $passed passed, $failed failed, $skipped skipped"
if [ "$rc" != 0 ] || [ "$failed" != 0 ]; then
  exit 1
fi
