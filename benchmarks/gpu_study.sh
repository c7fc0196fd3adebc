#!/usr/bin/env bash
# The design study on one GPU, in one call of at most 9 minutes; only small results are
# written into the output folder.
#
#   benchmarks/gpu_study.sh OUT                     # on the GPU machine
#   GPU_STUDY_SMOKE=1 benchmarks/gpu_study.sh OUT   # the rehearsal on a CPU, smoke configs
#                                                   # (tests/test_gpu_study.py runs it)
#
# Needs CIFAR-10 ($GAN_CIFAR10_DIR) and the converted FID Inception in $GAN_CACHE_DIR; on a
# machine without internet, benchmarks/gpu_cargo.py carries both, a part a call. Stages,
# each started only while enough of $GPU_STUDY_SECONDS (default 510) is left, each stopped
# (its runs checkpointed) when its share runs out:
#   1. recap, cpu_dcgan and its conditional twin, the seed's 100 epochs each (5,000 kimg;
#      images matched across batch sizes), bfloat16, FID/KID-10k against the 50,000
#      training images on the GPU every 25 epochs;
#   2. gan.bench of every config in bfloat16: img/s and the share of the card's bfloat16
#      matmul rate;
#   3. cpu_dcgan with one part removed at a time, 100 epochs each;
#   4. sngan_resnet and biggan_cifar for the minutes left, split evenly.
# OUT gets summary.md (every table) and results.tar.gz (each study's table, JSON, grids
# and FID figure; each run's last grid, curves and progress GIF; the bench JSON).
set -uo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
work=${GPU_STUDY_WORK:-$(mktemp -d)}  # Run folders: checkpoints stay on the machine.
mkdir -p "$work"
limit=${GPU_STUDY_SECONDS:-510}
start=$SECONDS
left() { echo $((limit - (SECONDS - start))); }

configs=(baseline recap cpu_dcgan sngan_cnn wgan_gp sngan_resnet sngan_projection biggan_cifar)
if [[ -n "${GPU_STUDY_SMOKE:-}" ]]; then
  smoke=smoke; budget='1 epochs'
  sets=(--set eval.every='1 epoch' --set eval.num_samples=20 --set eval.reference_split=test
        --set eval.metrics="('recognisability',)")
  protocol=(--num_samples 20 --reference test --metrics recognisability)
  bench=(--batch_sizes 4 --steps 1 --windows 1 --warmup 0)
  configs=(recap cpu_dcgan)
else
  smoke=''; budget='100 epochs'
  sets=(--set model.compute_dtype=bfloat16 --set train.steps_per_call=100
        --set log.tensorboard=False --set eval.samples_every='5 epochs'
        --set checkpoint.every='50 epochs' --set eval.every='25 epochs'
        --set eval.num_samples=10000)
  protocol=()
  bench=(--steps 20 --windows 3)
fi
variant() {  # variant NAME [VARIANTS] -> configs/NAME.py[:VARIANTS[,smoke]]
  local v=${2:-}
  [[ -n $smoke ]] && v=${v:+$v,}$smoke
  echo "configs/$1.py${v:+:$v}"
}

stage() {  # stage NAME SECONDS_NEEDED SECONDS_GIVEN command...
  local name=$1 needed=$2 given=$3; shift 3
  if (( $(left) < needed )); then
    echo "## $name: skipped, $(left) s left of $limit" | tee -a "$out/summary.md"
    return
  fi
  echo "== $name ($(left) s left; at most $given s)" >&2
  timeout -s TERM -k 20 "$given" "$@" > "$work/$name.log" 2>&1
  local status=$?
  echo "== $name: exit $status after $((SECONDS - start)) s" >&2
  tail -n 5 "$work/$name.log" >&2
  if [[ -f "$work/$name/study.md" ]]; then
    cat "$work/$name/study.md" >> "$out/summary.md"
  elif (( status == 0 )); then
    { echo "## $name"; echo '```'; cat "$work/$name.log"; echo '```'; } >> "$out/summary.md"
  elif (( status != 0 )); then
    echo "## $name: stopped (exit $status) before its table; its log's end:" >> "$out/summary.md"
    tail -n 20 "$work/$name.log" | sed 's/^/    /' >> "$out/summary.md"
  fi
}

study=("$python" -m gan.study --curve_every '' "${sets[@]}" "${protocol[@]}")

{ echo "# GPU study"; echo; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader \
    2>/dev/null || echo "no GPU (rehearsal)"; echo; } > "$out/summary.md"

stage designs 60 $(( $(left) * 55 / 100 )) "${study[@]}" --out "$work/designs" --budget "$budget" \
    "$(variant recap)" "$(variant cpu_dcgan)" "$(variant cpu_dcgan conditional)"

bench_configs=()
for c in "${configs[@]}"; do bench_configs+=(--config "$(variant "$c")"); done
bench_dtype=(--set model.compute_dtype=bfloat16)
stage bench 60 $(( $(left) * 30 / 100 )) "$python" -m gan.bench "${bench_configs[@]}" \
    "${bench_dtype[@]}" "${bench[@]}" --json "$work/bench.json"
[[ -f "$work/bench.json" ]] && { echo '## gan.bench, bfloat16'; echo '```';
  sed -n '/^{/,$p' "$work/bench.log"; echo '```'; } >> "$out/summary.md"

stage ablation 150 $(( $(left) * 60 / 100 )) "${study[@]}" --out "$work/ablation" --budget "$budget" \
    "$(variant cpu_dcgan no_sn_hinge)" "$(variant cpu_dcgan batch256)" \
    "$(variant cpu_dcgan shallow_d)"

big_minutes=$(awk -v s="$(left)" 'BEGIN { m = (s - 100) / 2 / 60; printf "%.2f", (m > 0.1 ? m : 0.1) }')
# The rehearsal checks the ResNet stage's commands without training (their CPU compile
# takes minutes; test_families trains both families' smoke runs).
big=()
[[ -n $smoke ]] && big_minutes=0.1 && big=(--dry_run)
stage big 120 $(( $(left) - 15 )) "${study[@]}" "${big[@]}" --out "$work/big" --budget "$big_minutes min" \
    "$(variant sngan_resnet)" "$(variant biggan_cifar)"

# The small results only: tables, JSON, figures, each run's last grid, curves and GIF.
( cd "$work" && find . -maxdepth 2 \( -name 'study*' -o -name 'bench.json' \) -print
  find . -maxdepth 4 -path './*/runs/*' \( -name curves.png -o -name progress.gif \
      -o -name confusion.png \) -print
  for run in ./*/runs/*/; do ls -1 "$run"samples/step_*.png 2>/dev/null | tail -n 1; done
) | sed 's|^\./||' | tar -czf "$out/results.tar.gz" -C "$work" -T -
echo "== done in $((SECONDS - start)) s; $out:" >&2
ls -la "$out" >&2
