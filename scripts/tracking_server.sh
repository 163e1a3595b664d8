#!/usr/bin/env bash
# Start the MLflow tracking server that every node of a sweep logs to.
#
# Usage (on the head node, from the repository root):
#   scripts/tracking_server.sh                      # 127.0.0.1:5000: this machine only
#   MLFLOW_HOST=10.0.0.5 scripts/tracking_server.sh # the head's private IP: workers can reach it
#   MLFLOW_BACKEND_STORE_URI=postgresql://study@db/mlflow \
#     MLFLOW_ARTIFACTS_DESTINATION=s3://my-bucket/study scripts/tracking_server.sh
# then, on the driver:
#   study sweep SPACE --address auto --tracking-uri http://10.0.0.5:5000
# Extra arguments go to `mlflow server` (e.g. --allowed-hosts). See docs/cluster.md.
#
# Environment (all optional):
#   MLFLOW_HOST                   interface to bind (default 127.0.0.1; never 0.0.0.0 on a
#                                 public network: the server has no authentication)
#   MLFLOW_PORT                   port (default 5000)
#   MLFLOW_BACKEND_STORE_URI      runs, params, metrics (default: SQLite on the head's local disk)
#   MLFLOW_ARTIFACTS_DESTINATION  where artifacts live; the server proxies them
#                                 (--serve-artifacts), so workers need no shared file system
#   MLFLOW_WORKERS                server processes (default 4)
#   MLFLOW_ALLOWED_HOSTS          Host headers accepted (MLflow refuses others against DNS
#                                 rebinding); default for a non-loopback MLFLOW_HOST: that address
#                                 and localhost (for an ssh tunnel), with and without the port
#   STUDY_MLFLOW_ROOT             folder for the default database and artifacts
#                                 (default ~/study-mlflow)
set -euo pipefail

root="${STUDY_MLFLOW_ROOT:-$HOME/study-mlflow}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
backend="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$root/mlflow.db}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$root/artifacts}"
workers="${MLFLOW_WORKERS:-4}"
allowed="${MLFLOW_ALLOWED_HOSTS:-}"
if [[ -z "$allowed" && "$host" != "127.0.0.1" && "$host" != "localhost" ]]; then
    # MLflow's own default accepts only loopback and RFC 1918 addresses: name ours explicitly.
    allowed="$host,$host:$port,localhost,localhost:$port,127.0.0.1,127.0.0.1:$port"
fi
security=()
if [[ -n "$allowed" ]]; then
    security=(--allowed-hosts "$allowed")
fi

if [[ "$backend" == sqlite:///* ]]; then
    db_dir="$(dirname "${backend#sqlite:///}")"
    mkdir -p "$db_dir"
    # SQLite's file locks are unreliable on network file systems: a shared database corrupts.
    fs_type="$(stat -f -c %T "$db_dir" 2>/dev/null || echo unknown)"
    case "$fs_type" in
        nfs* | cifs | smb* | fuse* | lustre | gpfs | ceph)
            echo "error: $db_dir is on $fs_type; keep SQLite on a local disk or use" \
                 "MLFLOW_BACKEND_STORE_URI=postgresql://..." >&2
            exit 2 ;;
    esac
fi
if [[ "$artifacts" != *://* ]]; then
    mkdir -p "$artifacts"
fi

# MLflow 3's GenAI job runner (a pool of workers) serves nothing the study records
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
echo "MLflow: $backend, artifacts in $artifacts, serving on http://$host:$port" >&2
exec mlflow server \
    --backend-store-uri "$backend" \
    --artifacts-destination "$artifacts" \
    --serve-artifacts \
    --host "$host" \
    --port "$port" \
    --workers "$workers" \
    ${security[@]+"${security[@]}"} \
    "$@"
