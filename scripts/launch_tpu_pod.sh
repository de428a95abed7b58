#!/usr/bin/env bash
# Launches a jaxgen experiment on every host of a Cloud TPU VM slice (a pod slice: v4-32, v5e-16, ...).
#
#   scripts/launch_tpu_pod.sh --name NAME --zone ZONE --accelerator TYPE --config FILE[:variant] \
#       --workdir gs://BUCKET/RUN [--data-dir gs://BUCKET/DATA] [--batch-size B] [--project P] \
#       [--create [--spot] [--version RUNTIME]] [--no-setup] [--dry-run] [-- EXTRA --config.* FLAGS]
#
# Steps (each a gcloud command, printed before it runs; --dry-run prints them and runs nothing):
#   1. --create: gcloud compute tpus tpu-vm create NAME (the TPU runtime image of that generation).
#   2. setup (unless --no-setup): this clone's committed tree (git archive HEAD) is copied to every
#      host and installed there into ~/jaxgen/.venv with 'jax[tpu]' and the train + gcs extras.
#   3. run: on every host (--worker=all) at once, in the background, under scripts/run_until_done.sh
#      (restarts on exit 75): python -m jaxgen.main ... --config.distributed=true; the log is
#      ~/jaxgen-run.log on each host. jax.distributed.initialize() finds the other hosts by itself on
#      TPU VMs; only process 0 writes logs; every process writes its shards of each checkpoint.
#
# The workdir must be gs:// (every host writes checkpoint shards to it; docs/pods.md). Rerunning this
# script with --no-setup resumes the run from its newest checkpoint (after a preemption that took the
# VMs: recreate them with --create, then run again). See docs/pods.md for the whole procedure.
set -euo pipefail

name="" zone="" accel="" config="" workdir="" data_dir="" batch="" project="" version=""
create=0 spot=0 setup=1 dry=0
extra=()
die() { echo "launch_tpu_pod: error: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) name="$2"; shift 2 ;;
    --zone) zone="$2"; shift 2 ;;
    --accelerator) accel="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --workdir) workdir="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --project) project="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --create) create=1; shift ;;
    --spot) spot=1; shift ;;
    --no-setup) setup=0; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown option $1: see --help." ;;
  esac
done
[[ -n "$name" ]] || die "--name is required: the TPU VM's name."
[[ -n "$zone" ]] || die "--zone is required (e.g. us-central2-b for v4, us-west4-a for v5e)."
[[ -n "$accel" ]] || die "--accelerator is required (e.g. v4-32, v5litepod-16)."
[[ -n "$config" ]] || die "--config is required: experiments/<family>/<name>.py[:variant]."
[[ "$workdir" == gs://?* ]] || die "--workdir must be gs://BUCKET/RUN: every host of the slice writes its checkpoint shards there."
[[ -z "$data_dir" || "$data_dir" == gs://?* ]] || die "--data-dir must be gs://... (the hosts cannot read this machine's disk)."

# Hosts and JAX devices per accelerator type (Cloud TPU docs, "TPU versions": v4 names count
# TensorCores, 2 per chip, one JAX device per chip (megacore); v5e/v6e names count chips; a host of a
# multi-host slice has 4 chips; a v5e/v6e slice of up to 8 chips is one host).
gen="${accel%%-*}"; size="${accel##*-}"
[[ "$size" =~ ^[0-9]+$ ]] || die "--accelerator $accel is not GENERATION-SIZE (v4-32, v5litepod-16, v6e-16)."
case "$gen" in
  v4) chips=$((size / 2)); default_version="tpu-ubuntu2204-base" ;;
  v5e|v5litepod) gen="v5litepod"; chips=$size; default_version="v2-alpha-tpuv5-lite" ;;
  v6e) chips=$size; default_version="v2-alpha-tpuv6e" ;;
  v5p) chips=$((size / 2)); default_version="v2-alpha-tpuv5" ;;
  *) die "--accelerator $accel: this script knows v4, v5litepod (v5e), v5p and v6e slices." ;;
esac
accel="$gen-$size"
if [[ "$gen" == v5litepod || "$gen" == v6e ]] && [[ $chips -le 8 ]]; then hosts=1; else hosts=$(( (chips + 3) / 4 )); fi
devices=$chips
version="${version:-$default_version}"

echo "# $accel: $chips chips = $devices JAX devices on $hosts host(s) ($((devices / hosts)) per host)"
if [[ -n "$batch" ]]; then
  [[ "$batch" =~ ^[0-9]+$ ]] || die "--batch-size takes a whole number."
  (( batch % devices == 0 )) || die "--batch-size $batch is not divisible by the $devices devices of $accel: pick a multiple of $devices."
  echo "# global batch $batch = $((batch / hosts)) per host = $((batch / devices)) per device"
  extra=("--config.batch_size=$batch" ${extra[@]+"${extra[@]}"})
fi

gcloud_args=(--zone="$zone")
[[ -n "$project" ]] && gcloud_args+=(--project="$project")

quote() {  # one word as a shell reads it back: bare when safe, else in single quotes
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then printf '%s' "$1"
  else local sq="'" esc="'\\''"; printf "'%s'" "${1//$sq/$esc}"; fi
}
run() {  # prints a command (shell-quoted), runs it unless --dry-run
  local out="" w
  for w in "$@"; do out+="$(quote "$w") "; done
  echo "${out% }"
  if [[ $dry -eq 0 ]]; then "$@"; fi
}

if [[ $create -eq 1 ]]; then
  create_args=(gcloud compute tpus tpu-vm create "$name" "${gcloud_args[@]}" --accelerator-type="$accel"
               --version="$version")
  [[ $spot -eq 1 ]] && create_args+=(--spot)
  run "${create_args[@]}"
fi

if [[ $setup -eq 1 ]]; then
  repo="$(cd "$(dirname "$0")/.." && pwd)"
  rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  tarball="${TMPDIR:-/tmp}/jaxgen-$rev.tar.gz"
  run git -C "$repo" archive --format=tar.gz -o "$tarball" HEAD
  run gcloud compute tpus tpu-vm scp "$tarball" "$name:jaxgen.tar.gz" "${gcloud_args[@]}" --worker=all
  install='rm -rf ~/jaxgen && mkdir -p ~/jaxgen && tar -xzf ~/jaxgen.tar.gz -C ~/jaxgen && cd ~/jaxgen && python3 -m venv .venv && .venv/bin/pip install -q -e ".[train,gcs]" "jax[tpu]"'
  run gcloud compute tpus tpu-vm ssh "$name" "${gcloud_args[@]}" --worker=all --command="$install"
fi

flags=(--config "$config" --workdir "$workdir" --config.distributed=true)
[[ -n "$data_dir" ]] && flags+=("--config.data.data_dir=$data_dir")
flags+=(${extra[@]+"${extra[@]}"})
remote="cd ~/jaxgen && nohup scripts/run_until_done.sh .venv/bin/python -m jaxgen.main"
for w in "${flags[@]}"; do remote+=" $(quote "$w")"; done
remote+=" > ~/jaxgen-run.log 2>&1 &"
run gcloud compute tpus tpu-vm ssh "$name" "${gcloud_args[@]}" --worker=all --command="$remote"
echo "# follow it: gcloud compute tpus tpu-vm ssh $name --zone=$zone --worker=0 --command='tail -f ~/jaxgen-run.log'"
