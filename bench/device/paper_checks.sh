#!/usr/bin/env bash
# Paper-profile checks for a lent GPU (the `device` tool). Results land in $OUT (at most 8 files).
#
# Before the call, here:  mkdir -p .device && cp PATH/TO/cifar10-jpeg.tar.gz .device/ && echo /.device/ >> .git/info/exclude
#   and, for the packages the GPU image lacks, wheels in .whl/ (see the device tool's README).
# The call:  bash bench/device/paper_checks.sh   with carry [".device", ".whl"], timeout_s ~540.
# Budgets are the paper's; GAN_STEPS / CLS_STEPS / CLS_SEEDS / FID_N shrink them for a dry run on a CPU.
set -euo pipefail
: "${OUT:?set OUT to the folder that comes back}"
GAN_STEPS=${GAN_STEPS:-50000}
CLS_STEPS=${CLS_STEPS:-10000}
CLS_SEEDS=${CLS_SEEDS:-"0 1 2 3 4"}
FID_N=${FID_N:-10000}
WORK=${WORK:-/tmp/effgen-device}
mkdir -p "$WORK"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export EFFGEN_ROOT="$PWD" EFFGEN_DATA="$WORK/data" EFFGEN_PROGRESS=0
effgen() { python3 -m effgen.cli "$@"; }
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/machine.txt" 2>&1 || echo "no GPU" > "$OUT/machine.txt"

# The GAN's data: CIFAR-10 as an image-folder tree (the closest offline stand-in for CIFAR-100).
if [[ -f .device/cifar10-jpeg.tar.gz ]]; then
  effgen data import-images .device/cifar10-jpeg.tar.gz --name cifar10 --force >/dev/null
fi

# 1. The corrected DCGAN at the paper's 50,000 steps: wall time and step rate (issue 6).
cat > "$WORK/gan.yml" <<YML
recipe: corrected
dataset: cifar100
steps: $GAN_STEPS
checkpoint_every: 5000
sample_every: 10000
YML
start=$(date +%s)
effgen train gan --params "$WORK/gan.yml" --out "$WORK/gan" --device auto > "$OUT/gan-train.txt"
echo "{\"gan_steps\": $GAN_STEPS, \"wall_s\": $(( $(date +%s) - start ))}" > "$OUT/gan-timing.json"

# 2. FID of that generator, 10k generated vs 10k test images (the paper's protocol, issue 7).
effgen fid cifar10:test "$WORK/gan/generator.pt" -n "$FID_N" --device auto > "$OUT/gan-fid.json"

# 3. The paper classifier at its full budget over seeds, on the offline AddNIST stand-in (issue 4).
for seed in $CLS_SEEDS; do
  printf 'steps: %s\nseed: %s\n' "$CLS_STEPS" "$seed" > "$WORK/cls-$seed.yml"
  effgen train classifier --params "$WORK/cls-$seed.yml" --out "$WORK/cls-$seed" --addnist-source mnist-5k \
    --device auto
done > "$OUT/classifier-seeds.json"
ls -la "$OUT"
