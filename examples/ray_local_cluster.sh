#!/usr/bin/env bash
# A Ray head and one worker on 127.0.0.1 with token authentication (Ray >= 2.52; the default for
# local clusters from Ray 2.59), then a tiny sweep through them. From the repository root after
# `make setup`:
#     CIRCUITS_DATA=../shared/data examples/ray_local_cluster.sh
# Writes only under runs/ (report and cache) and one temporary token file. Only the two Ray
# processes started here are stopped at the end (not `ray stop`, which would stop every Ray
# instance of your user on this machine).
set -euo pipefail
VENV=${VENV:-.venv}
RAY=$VENV/bin/ray
CIRCUITS=$VENV/bin/circuits
DATA=${CIRCUITS_DATA:-../shared/data}
PORT=${RAY_PORT:-6390}

# 1. The token. Every node and the driver need the same one, with RAY_AUTH_MODE=token in their
#    environment. Here it is generated into a private file and handed to each process through
#    RAY_AUTH_TOKEN_PATH; alternatives: RAY_AUTH_TOKEN=<token>, or the default file
#    ~/.ray/auth_token (`ray get-auth-token --generate` creates it; copy it to every node).
export RAY_AUTH_MODE=token
TOKEN_FILE=$(mktemp)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -f "$TOKEN_FILE"; }
trap cleanup EXIT
python3 -c 'import secrets; print(secrets.token_hex(32))' > "$TOKEN_FILE"
export RAY_AUTH_TOKEN_PATH=$TOKEN_FILE

# 2. Head (no CPUs for tasks, so they run on the worker) and one worker, both on 127.0.0.1;
#    --block keeps each in the foreground of a background job, so it can be stopped by its PID.
$RAY start --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus=0 --include-dashboard=false \
    --disable-usage-stats --block & PIDS+=($!)
sleep 8
$RAY start --address=127.0.0.1:"$PORT" --node-ip-address=127.0.0.1 --num-cpus=2 --disable-usage-stats --block &
PIDS+=($!)
sleep 8
$RAY status --address=127.0.0.1:"$PORT"

# 3. The driver joins the running cluster (same RAY_AUTH_MODE and token in its environment).
CIRCUITS_DATA=$DATA $CIRCUITS study sweep --images "$DATA/imagenet-sample-1000" --limit 16 \
    --single-unit-ablations mixed4a/curves --executor ray --address 127.0.0.1:"$PORT" --cpus-per-task 1 \
    --cache-dir runs/ray-example-cache --out runs/ray-example --overwrite
echo "report: runs/ray-example/report.html"
