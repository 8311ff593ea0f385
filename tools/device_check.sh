#!/usr/bin/env bash
# The GPU figures of the performance and population issues, in one call on the device machine.
#
# Prepare here:   bash tools/device_site.sh          (the packages the GPU machine lacks, .device/site.tar.gz)
# Then the device tool's run, carry [".device"], timeout_s 590:
#                 bash tools/device_check.sh
# Each step has its own time limit (about 8 minutes in all) and writes its output to $OUT/<step>.txt:
#   smoke       hindsight run with runtime.device=cuda end to end (PointReacher with AIR, one short epoch)
#   throughput  updates/s at batch 256: eager, bfloat16 and torch.compile (tools/bench_throughput.py)
#   population  populations of 1, 32 and 64 members, aggregate updates/s (tools/bench_population.py)
# DEVICE=cpu SIZES="1 2" runs the same steps here, to try the script out (with a site built for this Python).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-out/device}"
device="${DEVICE:-cuda}"
sizes="${SIZES:-1 32 64}"
mkdir -p "$out"
site=/tmp/hindsight-site
if [[ ! -f .device/site.tar.gz ]]; then
  echo "no .device/site.tar.gz: run tools/device_site.sh first and carry .device" >&2
  exit 2
fi
rm -rf "$site" && mkdir -p "$site" && tar xzf .device/site.tar.gz -C "$site"
export PYTHONPATH="$site:$PWD/src" MUJOCO_GL=disable PYTHONUNBUFFERED=1 WANDB_MODE=disabled
python=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to the terminal and $out/NAME.txt
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most $limit s): $*"
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
  echo "== $name exit status ${PIPESTATUS[0]}"
}

step environment 30 "$python" -c "
import torch, mujoco, dm_control, pydantic
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)
print('mujoco', mujoco.__version__, 'pydantic', pydantic.VERSION)"
step smoke 90 "$python" -m hindsight run envs/point_reacher/air.yaml --out /tmp/hindsight-smoke --no-progress \
  --set runtime.device="$device" --set train.epochs=1 --set train.loops_per_epoch=2 --set eval.episodes=2 \
  --set logging.wandb.mode=disabled
step throughput 210 "$python" tools/bench_throughput.py --device "$device" --compile --bf16 \
  --families point_reacher --skip-sb3 --skip-relabel --repeats 3 --steps 100
step population 210 "$python" tools/bench_population.py --device "$device" --sizes $sizes \
  --families point_reacher --loops 2 --skip-separate
