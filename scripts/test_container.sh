#!/usr/bin/env bash
# make test-container: build the image from a local Debian base, then run it the way clusters do (an arbitrary
# non-root uid, a read-only root with a tmpfs /tmp, a mounted work dir): a 2-point sweep logged to wandb offline,
# stopped by SIGTERM mid-run and re-run (the interrupted point resumes from its checkpoint, the other one trains), the
# report on it (both checked here, on the host), the unit tests inside the image (`make test`; the few that need
# root for a read-only bind mount are re-run as root, and any other skip but the bench extra fails), and a rebuild
# after a code-only change that must reuse the dependency layers. The last step of .ci/run: it needs root (it installs
# podman, runc and debootstrap when missing) and about 10 minutes from a cold state.
# Recipe and flags: the workplace notes on building with podman (a local Debian base, no Docker engine). Logs and
# the work dirs: $LOG_DIR. Any failure exits non-zero with the log's tail.
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
STOP_AT=${STOP_AT:-5}                                  # the sweep's first point gets SIGTERM at this step (of 20)
ROOT_TEST_FLAGS=${ROOT_TEST_FLAGS:---cap-add SYS_ADMIN}   # the tests that bind-mount read-only, run as root

apt_install() {  # apt_install PACKAGE...: the Debian packages of the recipe, when a command is missing
    echo "== installing $* (apt)"
    [ "$(id -u)" = 0 ] || { echo "FAIL: $* missing, and installing them needs root"; exit 1; }
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >/dev/null \
        || { echo "FAIL: apt-get install $*"; exit 1; }
}
if [ -z "$ENGINE" ]; then
    if command -v podman >/dev/null; then ENGINE=podman
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
    else ENGINE=podman
    fi
fi
if [ "$ENGINE" = podman ]; then
    missing=()
    for tool in podman runc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    [ "${#missing[@]}" = 0 ] || apt_install "${missing[@]}"
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

command -v "$ENGINE" >/dev/null || { echo "FAIL: ENGINE=$ENGINE is not installed"; exit 1; }
if ! E image exists "$BASE_IMAGE" 2>/dev/null && ! E image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || apt_install debootstrap
    step "making $BASE_IMAGE with debootstrap (about 1-3 minutes; log $LOG_DIR/debootstrap.log)"
    t=$SECONDS
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" >"$LOG_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$LOG_DIR/debootstrap.log"; echo "FAIL: debootstrap"; exit 1; }
    tar -C "$rootfs" -c . | E import - "$BASE_IMAGE" >>"$LOG_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$LOG_DIR/debootstrap.log"; echo "FAIL: importing the base image"; exit 1; }
    rm -rf "$rootfs"
    step "made $BASE_IMAGE in $((SECONDS - t))s"
fi

build() {  # build TAG CONTEXT LOG [--build-arg ...]
    local tag=$1 context=$2 log=$3
    shift 3
    E build $BUILD_FLAGS $LIMITS "${PIP_MOUNTS[@]}" --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg TORCH_CUDA=cpu \
        ${TORCH_INDEX_URL+--build-arg TORCH_INDEX_URL="$TORCH_INDEX_URL"} "$@" \
        -t "$tag" -f "$PWD/Dockerfile" "$context" >"$log" 2>&1 || { tail -40 "$log"; echo "FAIL: build, see $log"; exit 1; }
}
run_as_any_uid() {  # run_as_any_uid WORK_DIR [RUN FLAGS...] IMAGE ARGS...: as a cluster would
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

step "sweep as uid $RUN_UID, read-only root, SIGTERM at step $STOP_AT: ${SWEEP[*]} (log $LOG_DIR/sweep-stopped.log)"
work=$LOG_DIR/work
fresh_work_dir "$work"
# ffnlab's test hook (ffnlab.training.checkpoint.TEST_SIGNAL_AT_STEP): the first point sends itself SIGTERM at step $STOP_AT,
# saves last.ckpt at the next step boundary, records `interrupted` and exits 128 + 15; a signal stops the whole sweep.
code=0
run_as_any_uid "$work" --env FFNLAB_TEST_SIGNAL_AT_STEP="$STOP_AT:SIGTERM" "$IMAGE" "${SWEEP[@]}" \
    >"$LOG_DIR/sweep-stopped.log" 2>&1 || code=$?
[ "$code" = 143 ] || { tail -40 "$LOG_DIR/sweep-stopped.log"; echo "FAIL: the stopped sweep exited $code, not 143"; exit 1; }
stopped=$(python3 - "$work/outputs/container_test" "$STOP_AT" <<'EOF'
"""The stopped sweep: one record, interrupted at the next step boundary, with its checkpoint; the second point never
started. Prints the point, the step its checkpoint holds and its wandb run."""
import json, sys
from pathlib import Path

sweep, stop_at = Path(sys.argv[1]), int(sys.argv[2])
records = [json.loads(p.read_text()) | {"dir": p.parent} for p in sweep.glob("*/metrics.json")]
assert len(records) == 1, f"records after the stop: {[r['dir'].name for r in records]}"
(r,) = records
assert r["status"] == "interrupted" and r["signal"] == "SIGTERM" and stop_at <= r["step"] < 20, r
assert (r["dir"] / "checkpoints" / "last.ckpt").is_file(), r["dir"]
print(r["ffn"], r["step"], r.get("wandb_id") or "-")
EOF
) || { tail -40 "$LOG_DIR/sweep-stopped.log"; echo "FAIL: the stopped sweep's records"; exit 1; }
read -r stopped_ffn stopped_step stopped_wandb <<<"$stopped"
echo "   $stopped_ffn: interrupted, last.ckpt at step $stopped_step, exit 143 (wandb run $stopped_wandb)"

step "the same sweep again: $stopped_ffn resumes from step $stopped_step, the other point trains (log $LOG_DIR/sweep.log)"
run_as_any_uid "$work" "$IMAGE" "${SWEEP[@]}" >"$LOG_DIR/sweep.log" 2>&1 \
    || { tail -40 "$LOG_DIR/sweep.log"; echo "FAIL: sweep"; exit 1; }
grep -q "resuming from step $stopped_step " "$LOG_DIR/sweep.log" \
    || { tail -40 "$LOG_DIR/sweep.log"; echo "FAIL: the re-run did not resume from step $stopped_step"; exit 1; }
run_as_any_uid "$work" "$IMAGE" python scripts/compare.py /workspace/outputs/container_test >>"$LOG_DIR/sweep.log" 2>&1 \
    || { tail -40 "$LOG_DIR/sweep.log"; echo "FAIL: compare.py"; exit 1; }
python3 - "$work/outputs/container_test" "$RUN_UID" "$stopped_ffn" "$stopped_wandb" <<'EOF'
"""The sweep's records and report, as the host sees them: finished, finite, written by the container's uid."""
import json, math, sys
from pathlib import Path

sweep, uid, resumed, resumed_wandb = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = {json.loads(p.read_text())["ffn"]: p.parent for p in sweep.glob("*/metrics.json")}
assert sorted(runs) == ["relu", "swiglu"], f"run records: {sorted(runs)}"
for ffn, run in runs.items():
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["steps"] == 20, (ffn, metrics["status"], metrics["steps"])
    assert math.isfinite(metrics["val_loss"]) and math.isfinite(metrics["test_loss"]), (ffn, metrics)
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "csv" / "metrics.csv").is_file(), run
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb")), f"no offline wandb run in {run}"
    assert (run / "metrics.json").stat().st_uid == uid, "records not written by the container's uid"
    if ffn == resumed:  # the resumed run continues its wandb run
        assert metrics["wandb_id"] == resumed_wandb, (metrics["wandb_id"], resumed_wandb)
    print(f"   {ffn}: val_loss {metrics['val_loss']:.4f}, test_loss {metrics['test_loss']:.4f}, {run.name}"
          + (" (resumed)" if ffn == resumed else ""))
report = (sweep / "report" / "comparison.md").read_text()
assert "| relu |" in report and "| swiglu |" in report, report[:2000]
assert list((sweep / "report").glob("*.png")), "no plots"
print(f"   report: {sweep / 'report' / 'comparison.md'}")
EOF

step "unit tests inside the image (make test: pytest -m 'not slow'), as uid $RUN_UID, read-only root"
build "$IMAGE-tests" . "$LOG_DIR/build-tests.log" --build-arg WITH_TESTS=1
work=$LOG_DIR/work-tests
fresh_work_dir "$work"
run_as_any_uid "$work" "$IMAGE-tests" make test VENV=/opt/venv \
    PYTEST_ARGS="-p no:cacheprovider --junitxml=/workspace/unit-tests.xml" \
    >"$LOG_DIR/unit-tests.log" 2>&1 || { tail -40 "$LOG_DIR/unit-tests.log"; echo "FAIL: unit tests"; exit 1; }
echo "   $(grep -E '[0-9]+ (passed|failed)' "$LOG_DIR/unit-tests.log" | tail -1)"
# A skip is not a pass. Allowed: the bench extra, which this image leaves out on purpose (make test-bench runs
# those tests in .venv-bench). The tests that need root for a read-only bind mount run again below, as root.
# Any other skip fails.
skipped() {  # skipped JUNIT_XML: "<node id>\t<reason>" of each skipped test
    python3 - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
from pathlib import Path

for case in ET.parse(sys.argv[1]).iter("testcase"):
    skip = case.find("skipped")
    if skip is None:
        continue
    parts = case.get("classname").split(".")  # tests.test_store[.TestClass] -> tests/test_store.py[::TestClass]
    i = next(i for i in range(len(parts), 0, -1) if Path("/".join(parts[:i]) + ".py").is_file())
    node = "::".join(["/".join(parts[:i]) + ".py", *parts[i:], case.get("name")])
    print(f"{node}\t{' '.join(skip.get('message', '').split())}")
EOF
}
skips=$(skipped "$work/unit-tests.xml") || { echo "FAIL: reading $work/unit-tests.xml"; exit 1; }
needs_root=$(grep -F $'\tno read-only bind mount here' <<<"$skips" | cut -f1 || true)
unexpected=$(grep -v -F -e $'\tthe bench extra' -e $'\tno read-only bind mount here' <<<"$skips" | grep . || true)
[ -z "$unexpected" ] || { echo "$unexpected"; echo "FAIL: tests skipped in the image (above)"; exit 1; }
if [ -n "$needs_root" ]; then
    n=$(grep -c . <<<"$needs_root")
    step "the $n tests that need a read-only bind mount, as root ($ROOT_TEST_FLAGS; log $LOG_DIR/unit-tests-root.log)"
    mapfile -t nodes <<<"$needs_root"
    E run --rm $LIMITS --user 0 $ROOT_TEST_FLAGS --read-only --tmpfs /tmp -v "$work":/workspace \
        --env WANDB_MODE=offline "$IMAGE-tests" python -m pytest -q -rs -p no:cacheprovider \
        --junitxml=/workspace/unit-tests-root.xml "${nodes[@]}" >"$LOG_DIR/unit-tests-root.log" 2>&1 \
        || { tail -40 "$LOG_DIR/unit-tests-root.log"; echo "FAIL: unit tests as root"; exit 1; }
    still=$(skipped "$work/unit-tests-root.xml") || { echo "FAIL: reading $work/unit-tests-root.xml"; exit 1; }
    [ -z "$still" ] || { echo "$still"; echo "FAIL: skipped even as root"; exit 1; }
    echo "   $(grep -E '[0-9]+ (passed|failed)' "$LOG_DIR/unit-tests-root.log" | tail -1)"
fi

step "rebuild after a code-only change (log $LOG_DIR/build-code-change.log)"
context=$(mktemp -d)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then  # the tree's files (.dockerignore still applies)
    git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -c 2>/dev/null \
        | tar -x -C "$context"
else  # not a git checkout (an unpacked archive): all but what a run or an install leaves
    tar -c --exclude=./outputs --exclude=./.venv --exclude=./.venv-bench --exclude=./.cache --exclude=./wandb . \
        | tar -x -C "$context"
fi
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
