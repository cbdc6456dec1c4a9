"""Checks of an existing cluster, made before anything starts: is it there, will it let the runner
in, does it run the versions the runner has, and what is it made of.

``check_cluster(engine, address)`` returns a :class:`ClusterInfo` (the cluster's engine version and
one :class:`NodeInfo` per worker: host, cores, memory, library versions) or raises
:class:`~runner.errors.RunnerError` with one line saying what is wrong and how to fix it:

- every engine: an address that takes no TCP connection within ``timeout`` seconds;
- ``dask``: client, scheduler and workers must agree on python (major.minor), dask and
  distributed, and client and workers on numpy and scikit-learn (read with
  ``Client.get_versions``); a scheduler without workers is refused (the trials would wait forever);
- ``spark``: the master's version (its web UI, port 8080 unless ``ui_port`` says otherwise) must be
  installed pyspark's; a master without alive workers is refused;
- ``ray``: a cluster that requires token authentication while the runner has no (or a wrong)
  token is refused in about a second (``ray.init`` would retry for some 40 s and each trial would
  fail), and the cluster's Ray and Python versions must match this process's, as ``ray.init``
  requires (read with Ray's own GCS client).

Dask and Ray are probed in a short-lived child process, so the caller's process imports neither
and something that accepts the connection but never answers cannot hold it: the child gets
``IMPORT_SLACK_S`` seconds to import its library, then a few times ``timeout`` to answer.

Things that cannot be checked from outside (the master's UI not reachable, a ``ray://`` client
address) are reported in ``ClusterInfo.warnings`` instead of failing.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runner.errors import RunnerError
from runner.registry import ENGINES

__all__ = ["ClusterInfo", "NodeInfo", "check_cluster", "check_dask", "check_ray", "check_spark"]

#: The command-line option that gives each engine's address (named in error messages) and an
#: example address: read from the registry, the one place that says which engines take one.
OPTION = {e.name: e.address_option for e in ENGINES.values() if e.address_option}
EXAMPLE = {e.name: e.address_example for e in ENGINES.values() if e.address_option}
SPARK_UI_PORT = 8080
#: Seconds a probe (a child process) may spend starting and importing Dask or Ray, on top of
#: ``timeout`` for talking to the cluster.
IMPORT_SLACK_S = 15.0
#: Packages client and Dask workers must agree on (distribution names).
DASK_WORKER_PACKAGES = ("dask", "distributed", "numpy", "scikit-learn")
DASK_SCHEDULER_PACKAGES = ("dask", "distributed")


@dataclass(frozen=True)
class NodeInfo:
    """One worker of a cluster (a Dask worker, a Spark worker, a Ray node)."""

    name: str  # the worker's address or id
    host: str
    cores: float | None  # Dask threads, Spark cores, Ray CPUs (may be fractional)
    memory_gb: float | None
    versions: Mapping[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["versions"] = dict(self.versions)
        return out


@dataclass(frozen=True)
class ClusterInfo:
    """What the check found: the cluster's engine version, its workers, how long it took."""

    engine: str
    address: str
    version: str | None  # distributed (dask), Spark (spark), Ray (ray) version of the cluster
    nodes: tuple[NodeInfo, ...]
    check_s: float
    warnings: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)  # engine-specific extras

    @property
    def cores(self) -> float:
        return float(sum(n.cores or 0 for n in self.nodes))

    @property
    def memory_gb(self) -> float:
        return float(sum(n.memory_gb or 0 for n in self.nodes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; what the store keeps with the run's environment."""
        return {
            "engine": self.engine,
            "address": self.address,
            "version": self.version,
            "nodes": [n.to_dict() for n in self.nodes],
            "cores": self.cores,
            "memory_gb": self.memory_gb,
            "check_s": self.check_s,
            "warnings": list(self.warnings),
            "details": dict(self.details),
        }

    def __str__(self) -> str:
        head = (
            f"{self.engine} cluster at {self.address}: version {self.version or 'unknown'}, "
            f"{len(self.nodes)} worker(s), {self.cores:g} cores, {self.memory_gb:.1f} GB "
            f"(checked in {self.check_s:.2f} s)"
        )
        lines = [head]
        for node in self.nodes:
            mem = "?" if node.memory_gb is None else f"{node.memory_gb:.1f}"
            cores = "?" if node.cores is None else f"{node.cores:g}"
            lines.append(f"  {node.name} on {node.host}: {cores} cores, {mem} GB")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# -- shared ------------------------------------------------------------------------------------


def check_cluster(
    engine: str, address: str, *, timeout: float = 5.0, ui_port: int | None = None
) -> ClusterInfo:
    """Check the existing ``engine`` cluster at ``address`` (see the module's docstring).
    ``ui_port`` is the Spark master's web UI port (8080 when None); other engines ignore it."""
    if engine == "dask":
        return check_dask(address, timeout=timeout)
    if engine == "spark":
        return check_spark(address, timeout=timeout, ui_port=ui_port)
    if engine == "ray":
        return check_ray(address, timeout=timeout)
    raise RunnerError(
        f"engine {engine!r} does not run on an existing cluster; addresses are for "
        + ", ".join(sorted(OPTION))
    )


def _fail(engine: str, address: str, what: str) -> RunnerError:
    return RunnerError(f"{OPTION[engine]} {address}: {what}")


def _host_ports(engine: str, address: str, schemes: Sequence[str]) -> list[tuple[str, int]]:
    """``(host, port)`` of each host of ``address`` (Spark's HA form lists several)."""
    parts = urlsplit(address if "://" in address else f"{schemes[0]}://{address}")
    if parts.scheme not in schemes:
        raise _fail(
            engine,
            address,
            f"the scheme must be {' or '.join(s + '://' for s in schemes)}; "
            f"write e.g. {EXAMPLE[engine]}",
        )
    out = []
    for netloc in parts.netloc.split(","):
        host, sep, port = netloc.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _fail(
                engine, address, f"no host:port in {netloc!r}; write e.g. {EXAMPLE[engine]}"
            )
        out.append((host, int(port)))
    return out


def _connect(engine: str, address: str, hosts: Sequence[tuple[str, int]], timeout: float) -> int:
    """Index of the first host that takes a TCP connection within ``timeout`` seconds (all of
    them share the time); RunnerError when none does."""
    deadline = time.monotonic() + timeout
    errors = []
    for i, (host, port) in enumerate(hosts):
        left = max(deadline - time.monotonic(), 0.05)
        try:
            with socket.create_connection((host, port), timeout=left):
                return i
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            errors.append(f"cannot connect to {host}:{port} ({reason})")
    raise _fail(
        engine,
        address,
        "; ".join(errors) + "; start the cluster there or fix the address",
    )


def _gb(nbytes: float | None) -> float | None:
    return None if nbytes is None else float(nbytes) / 2**30


def _local_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _minor(python: str | None) -> str | None:
    return None if python is None else ".".join(python.split(".")[:2])


# -- dask --------------------------------------------------------------------------------------


#: Runs in a child process (a scheduler that accepts the connection but never answers would
#: hold ``Client`` far beyond its ``timeout``): versions of client, scheduler and workers, and the
#: workers' hosts, threads and memory.
_DASK_PROBE = r"""
import json, sys, warnings
warnings.simplefilter("ignore")  # Client warns of mismatched versions; the runner says it better
try:
    from distributed import Client

    print("TRIALKIT-READY", flush=True)
    client = Client(sys.argv[1], timeout=float(sys.argv[2]), set_as_default=False)
    try:
        versions = client.get_versions(check=False, packages=["scikit-learn"])
        workers = {
            addr: {k: w.get(k) for k in ("host", "nthreads", "memory_limit", "name")}
            # asked and read in one step, as runner.engines.dask.scheduler_workers does
            for addr, w in client.sync(client.scheduler.identity, n_workers=-1)["workers"].items()
        }
    finally:
        client.close()
    out = {"ok": True, "versions": versions, "workers": workers}
except BaseException as exc:
    text = str(exc).strip().splitlines()
    out = {"ok": False, "type": type(exc).__name__, "error": text[0] if text else ""}
print("TRIALKIT-PROBE " + json.dumps(out, default=str), flush=True)
"""


def _run_probe(
    engine: str,
    address: str,
    code: str,
    args: Sequence[str],
    answer_s: float,
    env: Mapping[str, str],
) -> tuple[dict[str, Any] | None, str]:
    """Run ``code`` in a child interpreter: it has ``IMPORT_SLACK_S`` seconds to import its
    library (it then prints ``TRIALKIT-READY``) and ``answer_s`` more to print its JSON answer.
    Returns that answer (None when it printed none: it ended early) and its stderr; RunnerError
    when it did not answer in time (the child is killed)."""
    import selectors
    import tempfile

    with tempfile.TemporaryFile("w+", errors="replace") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            errors="replace",
            env={**os.environ, **env},
        )
        assert proc.stdout is not None
        answer: dict[str, Any] | None = None
        deadline = time.monotonic() + IMPORT_SLACK_S
        waited = "to start"
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                while answer is None:
                    left = deadline - time.monotonic()
                    if left <= 0 or not sel.select(timeout=left):
                        raise _fail(
                            engine,
                            address,
                            f"no answer within {answer_s:g} s: something listens there but it "
                            f"is not a working {engine} cluster; fix the address"
                            if waited == "to answer"
                            else f"the {engine} probe did not start within {IMPORT_SLACK_S:g} s "
                            "(is the machine overloaded?)",
                        )
                    line = proc.stdout.readline()
                    if not line:  # the child ended without an answer
                        break
                    if line.startswith("TRIALKIT-READY"):
                        deadline, waited = time.monotonic() + answer_s, "to answer"
                    elif line.startswith("TRIALKIT-PROBE "):
                        answer = dict(json.loads(line.split(" ", 1)[1]))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        err.seek(0)
        return answer, err.read()


def check_dask(address: str, *, timeout: float = 5.0) -> ClusterInfo:
    """Connect to the Dask scheduler at ``address``, compare versions, list its workers."""
    start = time.perf_counter()
    hosts = _host_ports("dask", address, ("tcp", "tls", "ws", "wss"))
    _connect("dask", address, hosts, timeout)
    if _local_version("distributed") is None:
        raise RunnerError(
            "dask is not installed; pip install 'trialkit[dask]' to use a Dask scheduler"
        )
    result, stderr = _run_probe(
        "dask", address, _DASK_PROBE, [address, str(timeout)], timeout + 2.0, {}
    )
    if result is None:  # a bug (or a broken install), not something the address explains
        raise RuntimeError(f"the Dask probe printed no answer; its stderr ends: {stderr[-300:]}")
    if not result["ok"]:
        raise _fail(
            "dask",
            address,
            f"no Dask scheduler answered ({result['type']}: {result['error'] or 'timed out'}); "
            "start one with `dask scheduler` or fix the address",
        )
    return _dask_info(address, result["versions"], result["workers"], time.perf_counter() - start)


def _dask_info(
    address: str, versions: Mapping[str, Any], workers: Mapping[str, Any], check_s: float
) -> ClusterInfo:
    """Compare the versions ``Client.get_versions`` reported and build the info (pure)."""
    mine = dict(versions["client"]["packages"])
    scheduler = dict((versions.get("scheduler") or {}).get("packages") or {})
    by_worker = {a: dict((v or {}).get("packages") or {}) for a, v in versions["workers"].items()}

    def compare(where: str, theirs: Mapping[str, Any], packages: Sequence[str]) -> None:
        if _minor(theirs.get("python")) != _minor(mine.get("python")):
            raise _fail(
                "dask",
                address,
                f"{where} runs python {theirs.get('python')}, the runner {mine.get('python')}; "
                "use the same python (major.minor) on both",
            )
        for pkg in packages:
            if mine.get(pkg) is None or theirs.get(pkg) == mine[pkg]:
                continue
            has = f"has {pkg} {theirs[pkg]}" if theirs.get(pkg) else f"has no {pkg}"
            raise _fail(
                "dask",
                address,
                f"{where} {has}, the runner has {mine[pkg]}; install {pkg}=={mine[pkg]} there "
                "(or the same version here)",
            )

    compare("the scheduler", scheduler, DASK_SCHEDULER_PACKAGES)
    for addr in sorted(by_worker):
        compare(f"worker {addr}", by_worker[addr], DASK_WORKER_PACKAGES)
    if not workers:
        raise _fail(
            "dask",
            address,
            f"the scheduler has no workers; start some with `dask worker {address}`",
        )
    nodes = []
    for addr in sorted(workers):
        info = workers[addr]
        pkgs = by_worker.get(addr, {})
        nodes.append(
            NodeInfo(
                name=str(addr),
                host=str(info.get("host") or urlsplit(str(addr)).hostname or addr),
                cores=info.get("nthreads"),
                memory_gb=_gb(info.get("memory_limit")),
                versions={k: pkgs.get(k) for k in ("python", *DASK_WORKER_PACKAGES)},
            )
        )
    return ClusterInfo(
        engine="dask",
        address=address,
        version=scheduler.get("distributed"),
        nodes=tuple(nodes),
        check_s=check_s,
        details={"scheduler_python": scheduler.get("python")},
    )


# -- spark -------------------------------------------------------------------------------------

_SPARK_VERSION = re.compile(r'<span class="version[^"]*">\s*([^<\s]+)\s*</span>')


def _http_get(url: str, timeout: float) -> str:
    import urllib.request

    # straight to the master, as the driver connects: no HTTP proxy from the environment
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.read().decode("utf-8", errors="replace")


def check_spark(address: str, *, timeout: float = 5.0, ui_port: int | None = None) -> ClusterInfo:
    """Reach the standalone master at ``address``; read its version and workers from its web UI
    (``ui_port``, 8080 when None) and compare the version with installed pyspark's."""
    start = time.perf_counter()
    hosts = _host_ports("spark", address, ("spark",))
    host, port = hosts[_connect("spark", address, hosts, timeout)]
    ui = f"http://{host}:{ui_port or SPARK_UI_PORT}"
    try:
        state = json.loads(_http_get(f"{ui}/json/", timeout))
        page = _http_get(f"{ui}/", timeout)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return ClusterInfo(
            engine="spark",
            address=address,
            version=None,
            nodes=(),
            check_s=time.perf_counter() - start,
            warnings=(
                f"the master's web UI at {ui} did not answer ({reason}): its version and workers "
                "are not checked; give the UI port if it is not 8080",
            ),
        )
    match = _SPARK_VERSION.search(page)
    return _spark_info(
        address, port, ui, state, match.group(1) if match else None, time.perf_counter() - start
    )


def _spark_info(
    address: str,
    port: int,
    ui: str,
    state: Mapping[str, Any],
    version: str | None,
    check_s: float,
) -> ClusterInfo:
    """Check what the master's UI reported (pure): same master, same version, alive workers."""
    ui_master = str(state.get("url", ""))
    if urlsplit(ui_master).port not in (None, port):
        return ClusterInfo(
            engine="spark",
            address=address,
            version=None,
            nodes=(),
            check_s=check_s,
            warnings=(
                f"the web UI at {ui} belongs to master {ui_master}, not {address}: its version "
                "and workers are not checked; give this master's UI port",
            ),
        )
    mine = _local_version("pyspark")
    if version is not None and mine is not None and version != mine:
        raise _fail(
            "spark",
            address,
            f"the master runs Spark {version}, the runner has pyspark {mine}; "
            f"install pyspark=={version} or use a Spark {mine} cluster",
        )
    warnings = () if version else (f"the web UI at {ui} shows no Spark version; not compared",)
    alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
    if not alive:
        raise _fail(
            "spark",
            address,
            "the master has no alive workers; start one with "
            f"`start-worker.sh {ui_master or address}`",
        )
    nodes = tuple(
        NodeInfo(
            name=str(w.get("id")),
            host=str(w.get("host")),
            cores=w.get("cores"),
            memory_gb=None if w.get("memory") is None else float(w["memory"]) / 1024,
            versions={"spark": version},
        )
        for w in alive
    )
    return ClusterInfo(
        engine="spark",
        address=address,
        version=version,
        nodes=nodes,
        check_s=check_s,
        warnings=warnings,
        details={"ui": ui, "status": state.get("status"), "url": ui_master},
    )


# -- ray ---------------------------------------------------------------------------------------

#: Runs in a child process: Ray's own GCS client reads the cluster's metadata and node table.
#: A cluster with token authentication refuses it at once when the token is missing or wrong.
_RAY_PROBE = r"""
import json, os, sys
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
try:
    import ray
    from ray._private import services
    from ray._raylet import GcsClient
    from ray.core.generated import gcs_pb2

    print("TRIALKIT-READY", flush=True)
    address = services.canonicalize_bootstrap_address_or_die(sys.argv[1])
    timeout = float(sys.argv[2])
    client = GcsClient(address=address)
    raw = client.internal_kv_get(b"CLUSTER_METADATA", namespace=b"cluster", timeout=timeout)
    nodes = []
    for node in client.get_all_node_info(timeout=timeout).values():
        nodes.append({
            "node_id": node.node_id.hex(),
            "address": node.node_manager_address,
            "hostname": node.node_manager_hostname,
            "alive": gcs_pb2.GcsNodeInfo.GcsNodeState.Name(node.state) == "ALIVE",
            "head": bool(node.is_head_node),
            "resources": dict(node.resources_total),
        })
    out = {"ok": True, "address": address, "metadata": json.loads(raw) if raw else None,
           "nodes": nodes}
except BaseException as exc:
    text = str(exc).strip().splitlines()
    out = {"ok": False, "type": type(exc).__name__, "error": text[0] if text else ""}
print("TRIALKIT-PROBE " + json.dumps(out), flush=True)
"""


def _ray_token_source() -> str | None:
    """Where a token for Ray would come from here (None: nowhere)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path and Path(path).is_file():
        return path
    default = Path.home() / ".ray" / "auth_token"
    return "~/.ray/auth_token" if default.is_file() else None


def _ray_auth_error(address: str, error: str) -> RunnerError:
    mode = os.environ.get("RAY_AUTH_MODE", "").lower()
    source = _ray_token_source()
    if mode != "token" and source:
        fix = f"set RAY_AUTH_MODE=token (the token in {source} is sent only then)"
    elif mode != "token":
        fix = (
            "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the cluster's token "
            "(`ray get-auth-token` on the head node prints it)"
        )
    elif source:
        fix = f"the token from {source} was refused: use the head node's (`ray get-auth-token`)"
    else:
        fix = "RAY_AUTH_MODE=token but no token: set RAY_AUTH_TOKEN to the cluster's token"
    del error  # Ray's own text is several sentences long; ours says the same in one line
    return _fail("ray", address, f"the cluster requires token authentication; {fix}")


def check_ray(address: str, *, timeout: float = 5.0) -> ClusterInfo:
    """Reach the Ray cluster at ``address`` (its GCS, ``host:port``), check token authentication
    and the Ray/Python versions, list its alive nodes. ``auto`` is resolved as Ray does; a
    ``ray://`` (Ray Client) address is only checked for reachability."""
    start = time.perf_counter()
    if address.startswith("ray://"):
        hosts = _host_ports("ray", address, ("ray",))
        _connect("ray", address, hosts, timeout)
        return ClusterInfo(
            engine="ray",
            address=address,
            version=None,
            nodes=(),
            check_s=time.perf_counter() - start,
            warnings=(
                "a Ray Client address: only reachability is checked; give the GCS address "
                "(host:6379) to check authentication, versions and nodes",
            ),
        )
    if address != "auto":
        _connect("ray", address, _host_ports("ray", address, ("tcp",)), timeout)
    if _local_version("ray") is None:
        raise RunnerError("ray is not installed; pip install 'trialkit[ray]' to use a Ray cluster")
    seconds = max(math.ceil(timeout), 1)
    result, stderr = _run_probe(
        "ray",
        address,
        _RAY_PROBE,
        [address, str(timeout)],
        # connect (up to ``seconds``; then Ray's pubsub waits as long), and two calls
        3 * seconds + 2.0,
        {
            "RAY_USAGE_STATS_ENABLED": "0",
            # Ray's GCS client retries for about 40 s by default: ``timeout`` here
            "RAY_gcs_rpc_server_connect_timeout_s": str(seconds),
            "RAY_gcs_rpc_server_reconnect_timeout_s": str(seconds),
        },
    )
    if result is None:  # Ray's client ends the process when the GCS does not answer in time
        if "Failed to connect to GCS" in stderr:
            reason = "nothing there answers as a Ray GCS"
        else:
            tail = (stderr.strip().splitlines() or ["no output"])[-1]
            reason = f"the probe exited: {tail[:200]}"
        raise _fail(
            "ray",
            address,
            f"{reason}; give the head's GCS address (`ray status` on the head prints it)",
        )
    return _ray_info(address, result, time.perf_counter() - start)


def _ray_info(address: str, result: Mapping[str, Any], check_s: float) -> ClusterInfo:
    """Turn the probe's answer into the info, or the error it calls for (pure)."""
    if not result["ok"]:
        kind, error = result["type"], result["error"]
        if kind == "AuthenticationError" or "Authentication token" in error:
            raise _ray_auth_error(address, error)
        raise _fail(
            "ray",
            address,
            f"no Ray cluster answered ({kind}: {error}); start one with `ray start --head` "
            "or fix the address",
        )
    meta = result.get("metadata") or {}
    ray_version, python = meta.get("ray_version"), meta.get("python_version")
    mine_ray, mine_python = _local_version("ray"), platform.python_version()
    if ray_version and mine_ray and ray_version != mine_ray:
        raise _fail(
            "ray",
            address,
            f"the cluster runs Ray {ray_version}, the runner has {mine_ray}; "
            f"install ray=={ray_version} or use a Ray {mine_ray} cluster",
        )
    # ray.init refuses a different python patch level unless told otherwise, so check as it does
    level = os.environ.get("RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL", "patch")
    parts = 2 if level == "minor" else 3
    if python and python.split(".")[:parts] != mine_python.split(".")[:parts]:
        raise _fail(
            "ray",
            address,
            f"the cluster runs python {python}, the runner {mine_python}; Ray needs the same "
            + (
                "major.minor"
                if parts == 2
                else "version (or RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL=minor)"
            ),
        )
    nodes = []
    for node in result.get("nodes", []):
        if not node.get("alive"):
            continue
        res = node.get("resources", {})
        nodes.append(
            NodeInfo(
                name=str(node.get("node_id", ""))[:12] + (" (head)" if node.get("head") else ""),
                host=str(node.get("hostname") or node.get("address")),
                cores=res.get("CPU", 0.0),
                memory_gb=_gb(res.get("memory")),
                # every node of a cluster runs the head's Ray and Python (ray start checks)
                versions={"ray": ray_version, "python": python},
            )
        )
    if not nodes:
        raise _fail("ray", address, "the cluster has no alive node yet; retry once its head is up")
    if not any(n.cores for n in nodes):
        raise _fail(
            "ray",
            address,
            f"the cluster has no CPUs; add a node with `ray start --address={address}`",
        )
    return ClusterInfo(
        engine="ray",
        address=address,
        version=ray_version,
        nodes=tuple(nodes),
        check_s=check_s,
        details={"gcs_address": result.get("address"), "python": python},
    )
