#!/usr/bin/env bash
# make test-container: build the image from a local Debian base, then run it the way clusters do (an arbitrary
# non-root uid, a read-only root with a tmpfs /tmp, a mounted work dir): a 2-point sweep logged to wandb offline,
# the report on it (both checked here, on the host), the unit tests inside the image, and a rebuild after a
# code-only change that must reuse the dependency layers. Not part of .ci/run (it needs root and a few minutes).
# Recipe and flags: the workplace notes on building with podman (a local Debian base, no Docker engine). Logs and
# the work dirs: $LOG_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- Settings: this machine's; a user's own build needs none of them. Override any of them from the environment.
ENGINE=${ENGINE:-}                                     # podman | docker; default: podman, else a docker whose daemon answers
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-base:bookworm}   # made here with debootstrap when missing
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}                 # Python 3.11, the ABI of the local torch wheel
IMAGE=${IMAGE:-localhost/ffnlab:test}                  # the default image; $IMAGE-tests adds pytest and make
RUN_UID=${RUN_UID:-12345}                              # any uid the image has never heard of
LIMITS=${LIMITS:---ulimit nofile=20000:20000 --ulimit nproc=1024:1024}   # the defaults exceed this sandbox's hard limits
BUILD_FLAGS=${BUILD_FLAGS:---network host}
LOG_DIR=${LOG_DIR:-outputs/test-container}
SWEEP=(-m ffn=relu,swiglu trainer.max_steps=20 trainer.val_check_interval=10 model.n_layers=1
       trainer.enable_progress_bar=false logger=wandb experiment_name=container_test)

if [ -z "$ENGINE" ]; then
    if command -v podman >/dev/null; then ENGINE=podman
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
    else
        echo "== installing podman, runc and debootstrap (apt)"
        apt-get update -qq && apt-get install -y -qq podman runc debootstrap >/dev/null
        ENGINE=podman
    fi
fi
if [ "$ENGINE" = podman ]; then
    ENGINE_FLAGS=${ENGINE_FLAGS:---runtime runc}       # crun: "cgroups in hybrid mode not supported" here
    # pip in the build needs this machine's CA bundle and finds the torch CPU wheel in $PIP_FIND_LINKS; mounted at
    # paths of their own (a mount over /etc/ssl/certs breaks apt's ca-certificates).
    PIP_MOUNTS=()
    [ -n "${PIP_CERT:-}" ] && PIP_MOUNTS+=(-v "$PIP_CERT":/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt)
    [ -n "${PIP_FIND_LINKS:-}" ] && PIP_MOUNTS+=(-v "$PIP_FIND_LINKS":/run/wheels:ro --build-arg PIP_FIND_LINKS=/run/wheels)
else
    ENGINE_FLAGS=${ENGINE_FLAGS:-}
    PIP_MOUNTS=()                                      # docker build mounts nothing: torch comes from the CPU index
fi
# Empty: torch from the wheel folder (or PyPI); unset with docker: the Dockerfile's index for TORCH_CUDA=cpu.
[ -n "${PIP_FIND_LINKS:-}" ] && [ "$ENGINE" = podman ] && : "${TORCH_INDEX_URL=}"
E() { $ENGINE $ENGINE_FLAGS "$@"; }
mkdir -p "$LOG_DIR"
LOG_DIR=$(cd "$LOG_DIR" && pwd)
start=$SECONDS
step() { echo "== [$((SECONDS - start))s] $*"; }

if ! E image exists "$BASE_IMAGE" 2>/dev/null && ! E image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    step "making $BASE_IMAGE with debootstrap (about 3 minutes)"
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" >"$LOG_DIR/debootstrap.log"
    tar -C "$rootfs" -c . | E import - "$BASE_IMAGE" >>"$LOG_DIR/debootstrap.log"
    rm -rf "$rootfs"
fi

build() {  # build TAG CONTEXT LOG [--build-arg ...]
    local tag=$1 context=$2 log=$3
    shift 3
    E build $BUILD_FLAGS $LIMITS "${PIP_MOUNTS[@]}" --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg TORCH_CUDA=cpu \
        ${TORCH_INDEX_URL+--build-arg TORCH_INDEX_URL="$TORCH_INDEX_URL"} "$@" \
        -t "$tag" -f "$PWD/Dockerfile" "$context" >"$log" 2>&1 || { tail -40 "$log"; echo "FAIL: build, see $log"; exit 1; }
}
run_as_any_uid() {  # run_as_any_uid WORK_DIR IMAGE ARGS...: as a cluster would, and logged
    local work=$1
    shift
    E run --rm $LIMITS --user "$RUN_UID:$RUN_UID" --read-only --tmpfs /tmp -v "$work":/workspace \
        --env WANDB_MODE=offline "$@"
}
fresh_work_dir() { rm -rf "$1" && mkdir -p "$1" && chmod 0777 "$1"; }  # the container's uid owns what it writes

step "building $IMAGE ($ENGINE, base $BASE_IMAGE; log $LOG_DIR/build.log)"
t=$SECONDS
build "$IMAGE" . "$LOG_DIR/build.log"
step "built in $((SECONDS - t))s; size $(( $(E image inspect --format '{{.Size}}' "$IMAGE") / 1000000 )) MB"
[ "$(E run --rm $LIMITS "$IMAGE" id -u)" != 0 ] || { echo "FAIL: the image runs as root by default"; exit 1; }

step "sweep as uid $RUN_UID, read-only root: ${SWEEP[*]} (log $LOG_DIR/sweep.log)"
work=$LOG_DIR/work
fresh_work_dir "$work"
run_as_any_uid "$work" "$IMAGE" "${SWEEP[@]}" >"$LOG_DIR/sweep.log" 2>&1 \
    || { tail -40 "$LOG_DIR/sweep.log"; echo "FAIL: sweep"; exit 1; }
run_as_any_uid "$work" "$IMAGE" python scripts/compare.py /workspace/outputs/container_test >>"$LOG_DIR/sweep.log" 2>&1 \
    || { tail -40 "$LOG_DIR/sweep.log"; echo "FAIL: compare.py"; exit 1; }
python3 - "$work/outputs/container_test" "$RUN_UID" <<'EOF'
"""The sweep's records and report, as the host sees them: finished, finite, written by the container's uid."""
import json, math, sys
from pathlib import Path

sweep, uid = Path(sys.argv[1]), int(sys.argv[2])
runs = {json.loads(p.read_text())["ffn"]: p.parent for p in sweep.glob("*/metrics.json")}
assert sorted(runs) == ["relu", "swiglu"], f"run records: {sorted(runs)}"
for ffn, run in runs.items():
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 20, (ffn, metrics["status"], metrics["steps"])
    assert math.isfinite(metrics["val_loss"]) and math.isfinite(metrics["test_loss"]), (ffn, metrics)
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "csv" / "metrics.csv").is_file(), run
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb")), f"no offline wandb run in {run}"
    assert (run / "metrics.json").stat().st_uid == uid, "records not written by the container's uid"
    print(f"   {ffn}: val_loss {metrics['val_loss']:.4f}, test_loss {metrics['test_loss']:.4f}, {run.name}")
report = (sweep / "report" / "comparison.md").read_text()
assert "| relu |" in report and "| swiglu |" in report, report[:2000]
assert list((sweep / "report").glob("*.png")), "no plots"
print(f"   report: {sweep / 'report' / 'comparison.md'}")
EOF

step "unit tests inside the image (make test: pytest -m 'not slow'), as uid $RUN_UID, read-only root"
build "$IMAGE-tests" . "$LOG_DIR/build-tests.log" --build-arg WITH_TESTS=1
fresh_work_dir "$LOG_DIR/work-tests"
run_as_any_uid "$LOG_DIR/work-tests" "$IMAGE-tests" make test VENV=/opt/venv PYTEST_ARGS="-p no:cacheprovider" \
    >"$LOG_DIR/unit-tests.log" 2>&1 || { tail -40 "$LOG_DIR/unit-tests.log"; echo "FAIL: unit tests"; exit 1; }
echo "   $(grep -E '[0-9]+ (passed|failed)' "$LOG_DIR/unit-tests.log" | tail -1)"

step "rebuild after a code-only change (log $LOG_DIR/build-code-change.log)"
context=$(mktemp -d)
git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -c 2>/dev/null \
    | tar -x -C "$context"
echo "# a code-only change (make test-container)" >>"$context/src/ffnlab/__init__.py"
t=$SECONDS
build "$IMAGE-code-change" "$context" "$LOG_DIR/build-code-change.log"
rm -rf "$context"
layers() { E image inspect --format '{{range .RootFS.Layers}}{{println .}}{{end}}' "$1" | grep .; }
mapfile -t before < <(layers "$IMAGE")
mapfile -t after < <(layers "$IMAGE-code-change")
shared=0
while [ "$shared" -lt "${#before[@]}" ] && [ "${before[$shared]}" = "${after[$shared]}" ]; do shared=$((shared + 1)); done
echo "   rebuilt in $((SECONDS - t))s; layers: ${#before[@]} before, ${#after[@]} after, first $shared identical"
for i in "${!after[@]}"; do  # the layer ids: the dependency layers are the same ones
    [ "${before[$i]:-}" = "${after[$i]}" ] && same=same || same=NEW
    echo "   layer $i: ${before[$i]:7:12} -> ${after[$i]:7:12} $same"
done
# the build log: which RUN/COPY steps came from the cache, and what pip installed
awk '/^STEP/ { if (s != "") print (c ? "   cached   " : "   rebuilt  ") s; s = ($3 ~ /^(RUN|COPY)$/) ? $0 : ""; c = 0 }
     /Using cache/ { c = 1 }  END { if (s != "") print (c ? "   cached   " : "   rebuilt  ") s }' \
    "$LOG_DIR/build-code-change.log" | cut -c1-110
grep -h 'Successfully installed' "$LOG_DIR/build-code-change.log" | sed 's/^/   /'
installed=$(grep -h 'Successfully installed' "$LOG_DIR/build-code-change.log" || true)
[ "$installed" = "$(echo "$installed" | grep -E '^Successfully installed ffnlab-[^ ]+$')" ] \
    || { echo "FAIL: the code-only rebuild installed more than ffnlab: $installed"; exit 1; }
[ "$shared" -ge $((${#after[@]} - 2)) ] || { echo "FAIL: a code-only change rebuilt more than the code layers"; exit 1; }
E rmi "$IMAGE-code-change" >/dev/null

step "PASS ($((SECONDS - start))s); image $IMAGE: $(( $(E image inspect --format '{{.Size}}' "$IMAGE") / 1000000 )) MB"
