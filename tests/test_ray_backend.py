"""The Ray backend on a real local Ray cluster bound to loopback (no dashboard, no usage stats), through the
real `rupture run --address` command, with the real models loaded once per actor.

Needs the `ray` extra (`pip install -e '.[test,ray]'`). Without Ray installed the Ray tests are skipped,
except under CI (CI=1 or RUPTURE_REQUIRE_RAY=1), where a missing Ray is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.serialize import read_session_json

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[1]
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
           "PYTHONWARNINGS": "ignore"}
# Before Ray is imported: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray keeps 127.0.0.1 as 127.0.0.1 instead of
# rewriting it to the machine's outward address (where a loopback-bound cluster does not listen).
os.environ.update({k: v for k, v in RAY_ENV.items() if k.startswith("RAY_")})

try:
    import ray  # noqa: F401

    HAVE_RAY = True
except ImportError:  # pragma: no cover
    HAVE_RAY = False

needs_ray = pytest.mark.skipif(
    not HAVE_RAY and not (os.environ.get("CI") or os.environ.get("RUPTURE_REQUIRE_RAY")),
    reason="Ray not installed (pip install -e '.[test,ray]')")

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _pids_naming(text: str) -> list[int]:
    """Processes whose command line contains `text` (a cluster's own temp dir: only its processes name it)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if text.encode() in (d / "cmdline").read_bytes():
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


@contextlib.contextmanager
def _ray_cluster(tmp: Path):
    """A one-node Ray cluster on 127.0.0.1 (what an operator's existing cluster looks like), run by
    `ray start --block` in a session of its own. Stopping it ends that process group and any process that
    names the cluster's own temp dir, nothing else: `ray stop --force` would stop every Ray process on the
    machine (another user's cluster, another test run)."""
    port = _free_port()
    env = {**os.environ, **RAY_ENV}
    temp = tmp / "t"
    log = open(tmp / "ray-start.log", "w")
    proc = subprocess.Popen(
        [_ray_bin(), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
         "--include-dashboard", "false", "--disable-usage-stats", "--object-store-memory", str(200 * 1024 ** 2),
         "--temp-dir", str(temp), "--block"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in (tmp / "ray-start.log").read_text(errors="replace"):
            assert proc.poll() is None, (tmp / "ray-start.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the Ray cluster did not start within 180 s"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        _stop_cluster(proc, str(temp))
        log.close()


def _stop_cluster(proc: subprocess.Popen, temp: str) -> None:
    for sig, wait_s in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + 30
    while _pids_naming(temp) and time.monotonic() < deadline:  # the cluster's own processes wind down
        time.sleep(0.5)
    for pid in _pids_naming(temp):  # stragglers of this cluster only
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not HAVE_RAY:
        pytest.fail("Ray is required in CI: install the ray extra (pip install -e '.[test,ray]')")
    with _ray_cluster(tmp_path_factory.mktemp("ray")) as address:
        yield address


@needs_ray
@pytest.mark.slow
def test_cluster_teardown_stops_only_its_own_processes(tmp_path):
    """Issue 14, finding 10: the tests ran `ray stop --force`, which stops every Ray process on the machine.
    A decoy that `ray stop` would match (a command line naming default_worker.py) must outlive the teardown;
    the cluster's own processes must not."""
    import tempfile

    short = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # Ray's socket paths must stay under 108 bytes
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "default_worker.py"])
    try:
        with _ray_cluster(short) as address:
            assert address.startswith("127.0.0.1:") and _pids_naming(str(short / "t"))
        assert decoy.poll() is None, "the teardown stopped a process that was not its cluster's"
        assert _pids_naming(str(short / "t")) == []
    finally:
        decoy.kill()
        decoy.wait()
        shutil.rmtree(short, ignore_errors=True)


@needs_ray
@pytest.mark.slow
def test_ray_backend_on_existing_local_cluster(model_store, cluster, tmp_path, stereo_clip):
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(stereo_clip, inp / "one.wav")
    shutil.copy(stereo_clip, inp / "two two.wav")
    (inp / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    out = tmp_path / "out"
    env = {**os.environ, **RAY_ENV, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(inp), "--out", str(out), "--consent-on-file",
                        "--address", cluster, "--workers", "1"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 1, r.stderr[-3000:]  # the broken file failed; the batch went on
    assert "2 ok, 0 skipped, 1 failed" in r.stderr

    audit = [json.loads(x) for x in (out / "audit.jsonl").read_text().splitlines()]
    started = [a for a in audit if a["event"] == "started"]
    # models loaded once per actor: every session ran in the same actor process, not in the driver
    pids = {a["pid"] for a in started}
    assert len(pids) == 1 and len(started) == 3
    for sid in ("one", "two_two"):
        rec = read_session_json(out / sid / "session.json")
        assert rec.words and rec.provenance.diarization_method == "channels"
        prov = json.loads((out / sid / "session.json").read_text())["provenance"]
        assert prov["outputs"] and all((out / sid / n).is_file() for n in prov["outputs"])
        assert [a for a in audit if a["event"] == "processed" and a["session_id"] == sid][0]["attempt"] == prov["attempt"]
    fail = json.loads((out / "broken" / "failure.json").read_text())
    assert fail["stage"] == "audio"
    assert (out / "index.html").is_file()

    # the same skip-if-done across backends: the local backend finds the Ray outputs complete
    r2 = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(inp / "one.wav"), str(inp / "two two.wav"),
                         "--out", str(out), "--consent-on-file", "--backend", "local"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    assert r2.returncode == 0 and "0 ok, 2 skipped" in r2.stderr, r2.stderr[-2000:]


@needs_ray
def test_offline_and_thread_variables_reach_every_ray_worker(cluster, tmp_path):
    """The runtime_env the backend passes to ray.init puts the offline/no-telemetry and thread variables
    into every worker process of the job."""
    import ray

    from pipeline.config import load_config
    from pipeline.distributed import ray_init_kwargs
    from pipeline.offline import OFFLINE_ENV

    cfg = load_config(overrides={"runner": {"backend": "ray", "ray_address": cluster}})
    kw = ray_init_kwargs(cfg.runner, 1, 1)
    assert kw["address"] == cluster and kw["include_dashboard"] is False
    ray.init(**kw)
    try:
        @ray.remote(num_cpus=0.1)
        def env_of_worker():
            return {k: os.environ.get(k) for k in (*OFFLINE_ENV, "OMP_NUM_THREADS")}, os.getpid()

        seen = ray.get([env_of_worker.remote() for _ in range(4)])
    finally:
        ray.shutdown()
    for env, pid in seen:
        assert pid != os.getpid()
        assert {k: env[k] for k in OFFLINE_ENV} == OFFLINE_ENV and env["OMP_NUM_THREADS"] == "1"


def test_private_cluster_settings_bind_to_loopback(tmp_path):
    from pipeline.config import load_config
    from pipeline.distributed import ray_init_kwargs, threads_per_worker

    cfg = load_config(overrides={"runner": {"backend": "ray", "workers": 2, "ray_num_cpus": 2}})
    kw = ray_init_kwargs(cfg.runner, 2, 2)
    assert kw["_node_ip_address"] == "127.0.0.1" and "address" not in kw and kw["include_dashboard"] is False
    assert kw["num_cpus"] >= 4
    assert kw["runtime_env"]["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0"
    assert threads_per_worker(cfg) == 2
    local = load_config(overrides={"runner": {"workers": 3}})
    assert threads_per_worker(local, cores=12) == 4 and threads_per_worker(load_config()) == 0
