#!/usr/bin/env bash
# The GPU measurements, as one prepared script for a session that is lent a GPU machine (which
# has JAX with CUDA, flax, optax and chex, and no network).
#
#   bash benchmarks/gpu_session.sh prepare      # here: copy gymnax and Gymnasium (pure Python) into
#                                               # .gpu_deps/ (ignored by git), for the device to carry
#   bash benchmarks/gpu_session.sh run          # on the device (the device tool's run, carry .gpu_deps):
#                                               # each benchmark under its own time limit, outputs in $OUT
#   SIZE=quick bash benchmarks/gpu_session.sh run   # the same steps at smoke-test sizes (any machine)
#
# What it measures (docs/benchmarks.md says which table each fills): batched stepping at 16,384
# and 1,048,576 environments against gymnax (issue 27's GPU table), jrl.evaluate batched or not,
# DQN/PQN/PPO with batched_env_step as the number of environments grows, and PQN against DQN from
# 16 to 4,096 environments. The steps' limits add up to 560 s, within one 600-second call
# (timeout_s=600); each step writes its own file, so a step cut short loses only its own output.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "prepare" ]; then
    site=$(python3 -c "import gymnax, os; print(os.path.dirname(os.path.dirname(gymnax.__file__)))")
    rm -rf .gpu_deps && mkdir -p .gpu_deps
    for package in gymnax gymnasium farama_notifications; do
        cp -r "$site/$package" .gpu_deps/
    done
    grep -qx ".gpu_deps/" .git/info/exclude 2>/dev/null || echo ".gpu_deps/" >>.git/info/exclude
    du -sh .gpu_deps
    exit 0
fi
if [ "${1:-}" != "run" ]; then
    echo "usage: bash benchmarks/gpu_session.sh prepare|run" >&2
    exit 2
fi

OUT=${OUT:-/tmp/jrl-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$PWD/.gpu_deps:${PYTHONPATH:-}"
quick=$([ "${SIZE:-full}" = quick ] && echo 1 || echo 0)

step() {  # step NAME LIMIT_S COMMAND...: run, keep its output in $OUT/NAME.txt, go on if it fails
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit} s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "    exit $? after $((SECONDS - start)) s; last lines:"
    grep -v -i "warning" "$OUT/$name.txt" | tail -n 4 | sed 's/^/    /'
}

step environment 40 bash -c 'nvidia-smi --query-gpu=name,memory.total --format=csv; python3 -c "
import jax, flax, optax, jrl; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())"'
if [ "$quick" = 1 ]; then
    step batched_step 300 python3 benchmarks/batched_step.py --quick
    step batched_evaluate 120 python3 benchmarks/batched_evaluate.py --quick
    step batched_env_step 300 python3 benchmarks/batched_env_step.py --quick --envs 16 --repeats 1
    step pqn_vs_dqn_envs 300 python3 benchmarks/pqn_vs_dqn_envs.py --quick --out "$OUT/pqn_vs_dqn"
else
    step batched_step_16k 120 python3 benchmarks/batched_step.py --num-envs 16384 --no-write
    step batched_step_1m 100 python3 benchmarks/batched_step.py --num-envs 1048576 --steps 50 --repeats 3 --no-write
    step batched_evaluate 80 python3 benchmarks/batched_evaluate.py --episodes 16384 1048576 --repeats 3
    step batched_env_step 100 python3 benchmarks/batched_env_step.py --envs 1024 16384 --repeats 2
    step pqn_vs_dqn_envs 120 python3 benchmarks/pqn_vs_dqn_envs.py --out "$OUT/pqn_vs_dqn"
fi
ls -la "$OUT"
