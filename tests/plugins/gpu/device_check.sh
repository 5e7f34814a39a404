#!/usr/bin/env bash
# Device check of the gpu executor plugin, for a machine with a real NVIDIA
# GPU (driver + libnvidia-ml.so.1 + libcuda.so.1, python3). Runs one job
# through the real plugin loader that asks for 1 GPU and, through the CUDA
# driver API, lists the devices it can see and allocates 256 MB: PASS when it
# saw exactly its assigned device (by UUID) and a peak memory was measured.
#
# Usage: tests/plugins/gpu/device_check.sh [BUILD_DIR]
#   BUILD_DIR with bin/gpu_executor_test and plugins/libquern_gpu.so already
#   built is used as it is; otherwise (default build-gpu-check) it is
#   configured and only those two targets are built.
set -uo pipefail
cd "$(dirname "$0")/../../.."
build="${1:-build-gpu-check}"

fail() { echo "DEVICE CHECK: FAIL: $*"; exit 1; }

command -v nvidia-smi >/dev/null && { echo "--- nvidia-smi -L"; nvidia-smi -L; }

if [[ ! -x "$build/bin/gpu_executor_test" || ! -f "$build/plugins/libquern_gpu.so" ]]; then
  echo "--- building gpu_executor_test and quern_gpu in $build"
  if [[ ! -f "$build/build.ninja" ]]; then
    cmake -S . -B "$build" -G Ninja >"$build.configure.log" 2>&1 || { tail -30 "$build.configure.log"; fail "cmake configure"; }
  fi
  ninja -C "$build" -j"$(nproc)" gpu_executor_test quern_gpu || fail "build"
fi

echo "--- running the real-GPU test"
# QUERN_PLUGIN_DIR: the build may have been made under another path.
QUERN_REAL_GPU=1 QUERN_PLUGIN_DIR="$(cd "$build/plugins" && pwd)" \
  timeout 300 "$build/bin/gpu_executor_test" \
  --gtest_filter='GpuExecutorTest.RealGpuJobSeesExactlyItsAssignedDevice' 2>&1 | tee "$build/device_check.log"
rc=${PIPESTATUS[0]}
grep -q '\[  SKIPPED \]' "$build/device_check.log" && fail "the test was skipped"
grep -q '\[       OK \] GpuExecutorTest.RealGpuJobSeesExactlyItsAssignedDevice' "$build/device_check.log" || rc=1
[[ $rc -eq 0 ]] || fail "see the test output above"
echo "DEVICE CHECK: PASS"
