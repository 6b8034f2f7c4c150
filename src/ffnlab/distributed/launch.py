"""Where a run's processes come from, and one process group per sweep point (issue 9).

A point gets its processes in one of three ways:
  - `single`: devices x num_nodes == 1, nothing to set up;
  - `spawn`: ffnlab starts them. This process is local rank 0 of its node (of node 0 unless NODE_RANK says
    otherwise) and starts devices - 1 workers for this point alone (`python -m ffnlab.distributed.worker`), which run the
    point's resolved config and exit. Lightning's own launcher would re-run `sys.argv`, the whole multirun, in
    every child, and SIGKILL the sweep when a child fails;
  - `external`: torchrun or srun started every rank with the same command (a multirun runs in lockstep on every
    rank) and ffnlab joins them.

In every mode the ranks share one TCPStore for the life of the process, and each point uses a prefix of its own:
  - rank 0 decides what the point does (skip a finished run, resume, start fresh, or refuse) and the others read
    that decision from the store, so two ranks never act on different readings of the run dir;
  - the point's process group is created on the point's prefix, so the next point never meets its keys;
  - a rank that fails writes its error to the store and closes its group (spawned workers of the point are
    killed): the others' pending collectives fail at once (gloo: "connection closed by peer") instead of after the
    collective timeout (30 minutes by default);
  - at the end every rank says so in the store (not through the group, which a failure may have broken) and waits
    for the others, at most `SETTLE_TIMEOUT_S`; the point then fails on every rank if it failed on one, with the
    first error as the cause, and the group is destroyed so the next point starts clean.
NCCL: the group is aborted before it is destroyed; reviewed, not run (no GPU here). Several nodes in spawn mode
(`trainer.num_nodes`, the command run on every node) need MASTER_ADDR, MASTER_PORT and NODE_RANK, as Lightning's
own convention has it; torchrun or srun set them.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import pickle
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

log = logging.getLogger("ffnlab")

SETTLE_TIMEOUT_S = 60  # how long a rank waits for the others at the end of a point before giving up on them
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)  # torch's default; a failure is not left to it (see above)

WORKER_CONFIG = "FFNLAB_WORKER_CONFIG"  # the resolved config of the point a spawned worker runs (JSON)
WORKER_POINT = "FFNLAB_WORKER_POINT"  # that point's store prefix


class PeerFailed(RuntimeError):
    """Another rank of this point failed; this rank fails the point too."""


@dataclass
class World:
    mode: str  # single | spawn | external | worker
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    node_rank: int = 0
    local_size: int = 1
    address: str = "127.0.0.1"
    port: int = 0
    agent_store: bool = False  # torchrun's agent hosts the store at MASTER_ADDR:MASTER_PORT

    @property
    def distributed(self) -> bool:
        return self.size > 1


def local_process_count(trainer_cfg) -> int:
    """Processes per node the trainer config asks for (`devices`: an int, a list of ids, or auto/-1)."""
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, (list, tuple)) or (hasattr(devices, "__len__") and not isinstance(devices, str)):
        return len(devices)
    if str(devices) in ("auto", "-1"):
        accelerator = str(trainer_cfg.get("accelerator", "cpu"))
        return torch.cuda.device_count() if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else 1
    return int(devices)


def resolve_world(trainer_cfg) -> World:
    """The processes this point runs on, and this process's place among them."""
    env = os.environ
    num_nodes = int(trainer_cfg.get("num_nodes", 1) or 1)
    if WORKER_POINT in env:
        return World("worker", rank=int(env["RANK"]), size=int(env["WORLD_SIZE"]),
                     local_rank=int(env["LOCAL_RANK"]), node_rank=int(env["NODE_RANK"]),
                     local_size=int(env["LOCAL_WORLD_SIZE"]), address=env["MASTER_ADDR"],
                     port=int(env["MASTER_PORT"]))
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for environment in (TorchElasticEnvironment, SLURMEnvironment):
        if environment.detect():
            cluster = environment()
            size = cluster.world_size()
            if size > 1:
                return World("external", rank=cluster.global_rank(), size=size, local_rank=cluster.local_rank(),
                             node_rank=cluster.node_rank(), local_size=size // num_nodes,
                             address=cluster.main_address, port=cluster.main_port,
                             agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true")
    local = local_process_count(trainer_cfg)
    if local * num_nodes == 1:
        return World("single")
    node_rank = int(env.get("NODE_RANK", 0))
    return World("spawn", rank=node_rank * local, size=local * num_nodes, node_rank=node_rank, local_size=local,
                 address=env.get("MASTER_ADDR", "127.0.0.1"), port=int(env.get("MASTER_PORT", 0)))


# One store per process, kept across points (a port is bound once; each point has its own prefix).
_STORE: dist.TCPStore | None = None
_POINTS = 0  # points this process has run: the same sequence on every rank of a lockstep sweep


def _store(world: World) -> dist.TCPStore:
    global _STORE
    if _STORE is None:
        hosts = world.rank == 0 and not world.agent_store and world.mode != "worker"
        _STORE = dist.TCPStore(world.address, world.port, None if not hosts else world.size, is_master=hosts,
                               timeout=COLLECTIVE_TIMEOUT, wait_for_workers=False)
    world.port = _STORE.port  # spawn mode without MASTER_PORT: the free port the store took, for the workers
    return _STORE


@dataclass
class Point:
    """One sweep point's share of the world: decisions from rank 0, a process group, failure agreement."""

    world: World
    store: dist.Store | None = None
    prefix: str = ""
    workers: list = field(default_factory=list)
    _saved_env: dict = field(default_factory=dict)
    _failed: bool = False

    @property
    def rank(self) -> int:
        return self.world.rank

    def decide(self, name: str, decide_on_rank_zero):
        """Run `decide_on_rank_zero()` on rank 0 only and return its result on every rank; an exception it
        raises is raised on every rank (a refusal is the same one-line error everywhere)."""
        if not self.world.distributed:
            return decide_on_rank_zero()
        key = self.prefix + f"decision/{name}"
        if self.rank == 0:
            try:
                outcome = ("ok", decide_on_rank_zero())
            except Exception as error:  # noqa: BLE001 - handed to every rank, then raised
                outcome = ("error", error)
            self.store.set(key, pickle.dumps(outcome))
        else:
            outcome = pickle.loads(self.store.get(key))
        if outcome[0] == "error":
            raise outcome[1]
        return outcome[1]

    def start(self, cfg_container: dict) -> None:
        """Start this node's workers (spawn mode) and join the point's process group."""
        if not self.world.distributed:
            return
        if self.world.mode == "spawn":
            self._spawn_workers(cfg_container)
        backend = "nccl" if str(cfg_container["trainer"].get("accelerator")) in ("gpu", "cuda") else "gloo"
        dist.init_process_group(backend, store=dist.PrefixStore(self.prefix + "pg/", self.store), rank=self.rank,
                                world_size=self.world.size, timeout=COLLECTIVE_TIMEOUT)

    def _spawn_workers(self, cfg_container: dict) -> None:
        world = self.world
        common = {"MASTER_ADDR": world.address, "MASTER_PORT": str(world.port), "WORLD_SIZE": str(world.size),
                  "NODE_RANK": str(world.node_rank), "LOCAL_WORLD_SIZE": str(world.local_size)}
        # Lightning joins processes that LOCAL_RANK says were created for it; this process is local rank 0.
        self._saved_env = {k: os.environ.get(k) for k in (*common, "LOCAL_RANK", "RANK")}
        os.environ.update(common, LOCAL_RANK="0", RANK=str(world.rank))
        config_json = json.dumps(cfg_container)
        for local_rank in range(1, world.local_size):
            env = {**os.environ, **common, "LOCAL_RANK": str(local_rank), "RANK": str(world.rank + local_rank),
                   WORKER_POINT: self.prefix, WORKER_CONFIG: config_json}
            self.workers.append(subprocess.Popen([sys.executable, "-m", "ffnlab.distributed.worker"], env=env))

    # ------------------------------------------------------------------------------------------ failure

    def fail(self, error: BaseException) -> str:
        """Say in the store that this rank failed, abort the group so no peer waits on it; returns the point's
        first error (this one, or a peer's that came first), as one line for the record."""
        if not self.world.distributed:
            return f"{type(error).__name__}: {error}"
        if not self._failed:
            self._failed = True
            first_key = self.prefix + "failure/1"
            # A worker that died without a word (killed, out of memory) is the cause of this rank's broken collective.
            dead = self._dead_worker(wait_s=0.5) if self.workers and not self.store.check([first_key]) else None
            for message in (dead, f"rank {self.rank}: {type(error).__name__}: {error}"):
                if message:
                    self.store.set(self.prefix + f"failure/{self.store.add(self.prefix + 'failures', 1)}", message)
            self._close_group()
        return self.store.get(self.prefix + "failure/1").decode()

    def _close_group(self) -> None:
        """Close this rank's connections now, so a peer blocked in a collective fails at once. gloo closes them
        only when the group object dies: DDP's reducer holds it, and Lightning has unwrapped DDP by now, so a
        collection frees it. Spawned workers are this point's alone: they are stopped outright."""
        import gc

        for proc in self.workers:
            proc.kill()
        if dist.is_initialized():
            group = dist.distributed_c10d._get_default_group()
            try:
                group.abort()  # NCCL: aborts the communicators (reviewed, not run)
            except RuntimeError:
                pass
            dist.destroy_process_group()
        gc.collect()

    def _dead_worker(self, wait_s: float) -> str | None:
        deadline = time.monotonic() + wait_s
        while True:
            for local_rank, proc in enumerate(self.workers, start=1):
                if proc.poll() not in (None, 0):
                    return f"rank {self.world.rank + local_rank} exited with code {proc.returncode}"
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    def settle(self, failed: bool) -> None:
        """Every rank reaches here at the end of the point: wait for the others (bounded), then raise
        PeerFailed on a rank that succeeded when another did not."""
        if not self.world.distributed:
            return
        try:
            self.store.set(self.prefix + f"done/{self.rank}", "1")
            keys = [self.prefix + f"done/{r}" for r in range(self.world.size)]
            deadline = time.monotonic() + SETTLE_TIMEOUT_S
            while not self.store.check(keys):
                if self.workers and self._dead_worker(0):  # a worker killed or crashed: its word never comes
                    failed = failed or not self.store.check([self.prefix + "failure/1"])
                    break
                if time.monotonic() > deadline:
                    log.warning("not every rank finished the point within %d s: giving up on them", SETTLE_TIMEOUT_S)
                    failed = True
                    break
                time.sleep(0.05)
            peer_failure = self.store.check([self.prefix + "failure/1"])
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
            self._reap_workers()
            for key, value in self._saved_env.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        if peer_failure and not failed:
            raise PeerFailed(self.store.get(self.prefix + "failure/1").decode())

    def _reap_workers(self) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        for proc in self.workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def point(trainer_cfg):
    """The current sweep point's processes: `with point(cfg.trainer) as p: ...`; see the module docstring."""
    global _POINTS
    world = resolve_world(trainer_cfg)
    if not world.distributed:
        yield Point(world)
        return
    store = _store(world)
    if world.mode == "worker":
        prefix = os.environ[WORKER_POINT]
    else:
        _POINTS += 1
        prefix = f"ffnlab/point{_POINTS}/"
    current = Point(world, store, prefix)
    failed = False
    try:
        yield current
    except BaseException as error:
        from ffnlab.training.checkpoint import Interrupted

        failed = not isinstance(error, Interrupted)  # every rank stops at the same step: nothing to abort
        if failed:
            current.fail(error)
        raise
    finally:
        current.settle(failed)
