"""Real Ray clusters on 127.0.0.1 for tests: a head, and worker nodes that see their own files.

Every process a cluster starts carries a tag in its environment, so a test stops exactly its own
cluster (`ray stop` would stop every Ray on the machine, other test sessions' included) and can
kill one node as a lost machine dies. A *private* node runs in its own mount namespace with a
tmpfs over a folder: there it sees none of the driver's files, as a node of a cluster that
shares nothing but the network.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from bnbench.results import rundir

_TAG = "BNBENCH_TEST_RAY"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray() -> str:
    return shutil.which("ray") or "ray"


def _tagged(tag: str) -> list[int]:
    """The processes whose environment holds `tag` (a cluster's, or one node's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"{_TAG}={tag}".encode() in environ or f"{_TAG}_NODE={tag}".encode() in environ:
            found.append(int(entry.name))
    return found


def _kill(tag: str) -> None:
    for _ in range(5):  # a dying raylet may still start a worker
        pids = _tagged(tag)
        if not pids:
            return
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


@dataclass
class Node:
    """A worker node of a `Cluster`, in its own mount namespace when `private` is set."""

    tag: str
    private: Path | None

    def pids(self) -> list[int]:
        return _tagged(self.tag)

    def kill(self) -> None:
        """kill -9 every process of the node, as when its machine is lost."""
        _kill(self.tag)

    def listing(self, folder: Path) -> list[str]:
        """The files under `folder` as this node sees them (through its mount namespace)."""
        pid = min(self.pids())
        command = ["nsenter", "-t", str(pid), "-m", "find", str(folder), "-mindepth", "1"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        return sorted(done.stdout.split())


@dataclass
class Cluster:
    """A Ray head on 127.0.0.1 and the worker nodes added to it."""

    address: str
    tag: str
    temp: str
    env: dict[str, str]
    nodes: list[Node] = field(default_factory=list)

    def add_node(self, cpus: int, private: Path | None = None) -> Node:
        """Start a worker node with `cpus` CPUs; with `private`, a tmpfs over that folder in its
        own mount namespace (needs root and `unshare`), so it sees nothing of the driver's there.
        """
        node = Node(uuid.uuid4().hex, private)
        start = [_ray(), "start", f"--address={self.address}", f"--num-cpus={cpus}",
                 "--node-ip-address=127.0.0.1", "--disable-usage-stats"]  # fmt: skip
        command = shlex.join(start)
        if private is not None:
            mount = shlex.join(["mount", "-t", "tmpfs", "tmpfs", str(private)])
            script = f"{mount} && exec {command}"
            command = shlex.join(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
        env = {**self.env, f"{_TAG}_NODE": node.tag}
        subprocess.run(command, shell=True, check=True, capture_output=True, timeout=120, env=env)
        self.nodes.append(node)
        return node


def in_scratch(run_id: str) -> Path | None:
    """The folder of `run_id` in a worker's scratch on this machine, once training has begun
    writing its history (nodes' temporary folders are not hidden, only the results are)."""
    for folder in Path(tempfile.gettempdir()).glob("bnbench-run-*"):
        if (folder / run_id / rundir.HISTORY).exists():
            return folder / run_id
    return None


def private_mounts_work() -> str | None:
    """Why a private node cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "a private Ray node needs root (mount namespaces and tmpfs)"
    if not (shutil.which("unshare") and shutil.which("nsenter")):
        return "a private Ray node needs unshare and nsenter (util-linux)"
    with tempfile.TemporaryDirectory() as folder:
        probe = ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs",
                 folder]  # fmt: skip
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    if done.returncode:
        return f"unshare -m cannot mount a tmpfs here: {done.stderr.strip()}"
    return None


@contextmanager
def ray_cluster(head_cpus: int, **system: str) -> Iterator[Cluster]:
    """A Ray head with `head_cpus` CPUs for tasks; stopped, with its nodes, on exit.

    Args:
        head_cpus: CPUs the head offers to tasks (0: every task runs on an added node).
        system: Ray's system settings for the head, as `RAY_<name>` variables (e.g. a quicker
            health check, so that a lost node is noticed within seconds).
    """
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must be short
    tag = uuid.uuid4().hex
    # Whatever ~/.ray holds: Ray turns token authentication on for a cluster started where a
    # token file exists, and a client that names an address must then opt in as well.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", _TAG: tag}
    # Not this checkout on the nodes' path: what they import of bnbench is what `ablate` ships.
    env.pop("PYTHONPATH", None)
    env.update({f"RAY_{name}": value for name, value in system.items()})
    start = [_ray(), "start", "--head", f"--port={port}", f"--num-cpus={head_cpus}",
             "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--include-dashboard=false",
             "--disable-usage-stats"]  # fmt: skip
    cluster = Cluster(f"127.0.0.1:{port}", tag, temp, env)
    try:
        subprocess.run(start, check=True, capture_output=True, timeout=120, env=env)
        with _environment("RAY_AUTH_MODE", "disabled"):
            yield cluster
    finally:
        for node in cluster.nodes:
            node.kill()
        _kill(tag)
        shutil.rmtree(temp, ignore_errors=True)


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
