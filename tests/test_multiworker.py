"""``tfkws train --strategy multiworker``: two local CPU worker processes configured by TF_CONFIG
train one run folder; a job whose worker was killed after the first epoch, started again,
goes on from that epoch; both workers exit 0 and the run ends with the weights of a one-process
run with the same global batch and seed (one test: every multi-worker start is slow).

Tolerance, not equality: the two workers compute the same sums in another order (each worker's
half batch summed, then all-reduced; BatchNorm statistics synchronised across the workers, where
one process uses the fused kernel), and Adam amplifies those roundoff differences wherever a
gradient is close to zero (its first steps move by about ``lr * sign(gradient)``). One process
switching only its BatchNorm kernel moves the weights as much (~0.3 % relative L2 here); a
worker reading the wrong clips changes the losses at the first epoch already.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tone_dataset
from helpers import TONE_WORDS, subprocess_env, train_command, trained_weights

EPOCHS = 2
# 16 clips a word, 4 of them validation: 36 training clips, 3 global batches of 12 an epoch.
GLOBAL_BATCH = 12


def _cmd(data: Path, out: Path, strategy: str, *extra: str) -> list[str]:
    # dropout=0: dropout masks are drawn per replica
    params = 'size="s",channels=8,dropout=0'
    return train_command(
        data, out, EPOCHS, GLOBAL_BATCH, params, "--noaugment", f"--strategy={strategy}", *extra
    )


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start_workers(data: Path, out: Path, logs: Path, tag: str) -> list[subprocess.Popen]:
    """Two worker processes of one job (``--resume``: a cluster job always resumes)."""
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        env = subprocess_env(
            {"cluster": cluster, "task": {"type": "worker", "index": i}}, logs / "tmp"
        )
        with open(logs / f"{tag}{i}.log", "w") as log:
            cmd = _cmd(data, out, "multiworker", "--resume")
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log))
    return procs


def _wait(procs: list[subprocess.Popen], logs: Path, tag: str, timeout: float = 600) -> None:
    for i, p in enumerate(procs):
        try:
            code = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        log = (logs / f"{tag}{i}.log").read_text()
        assert code == 0, f"{tag}{i} exited {code}:\n{log[-3000:]}"


@pytest.mark.slow
def test_two_workers_killed_and_restarted_train_one_run_like_one_process(tmp_path: Path) -> None:
    data = write_tone_dataset(tmp_path / "data", TONE_WORDS, clips_per_word=16)
    logs = tmp_path / "logs"
    (logs / "tmp").mkdir(parents=True)
    reference = tmp_path / "one"  # one process, same global batch and seed, alongside
    one = subprocess.Popen(
        _cmd(data, reference, "cpu"),
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    out = tmp_path / "run"
    procs = _start_workers(data, out, logs, "first")
    marker = out / "checkpoints" / "checkpoint"
    deadline = time.time() + 600
    while not marker.exists() and procs[1].poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert procs[1].poll() is None, "training finished before a worker could be killed"
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    try:  # the chief fails at its next collective step, with one line saying what to do
        code = procs[0].wait(timeout=120)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        raise
    chief_log = (logs / "first0.log").read_text()
    assert code == 2 and "a worker of the cluster is gone" in chief_log, chief_log[-3000:]
    assert "--resume" in chief_log and "Traceback" not in chief_log
    assert len(list((logs / "tmp").glob("tfkws-worker1-*"))) == 1  # what the killed one left
    done = len(json.loads((out / "history.json").read_text())["loss"])
    assert 1 <= done < EPOCHS and not (out / "results.json").exists()

    # The job restarted: the same command on both workers; they go on after the last epoch.
    _wait(_start_workers(data, out, logs, "again"), logs, "again")
    assert "resuming" in (logs / "again1.log").read_text()
    assert not any((logs / "tmp").glob("tfkws-worker*"))  # the restarted worker cleaned up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "logs", "one", "run"]
    assert (out / "results.json").exists() and (out / "best_weights.h5").exists()
    assert json.loads((out / "run_config.json").read_text())["train"]["strategy"] == "multiworker"
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == len(history["epoch_seconds"]) == EPOCHS

    assert one.wait(timeout=600) == 0
    a = np.concatenate([w.ravel() for w in trained_weights(out, trainable_only=True)])
    b = np.concatenate([w.ravel() for w in trained_weights(reference, trainable_only=True)])
    assert np.linalg.norm(a - b) <= 0.02 * np.linalg.norm(b)
    ref = json.loads((reference / "history.json").read_text())["loss"]
    np.testing.assert_allclose(history["loss"][0], ref[0], rtol=1e-3)


def test_worker_index_and_chief_follow_tf_config_order() -> None:
    from types import SimpleNamespace

    from tfkws.training.strategy import is_chief, worker_index

    def strategy(kind: str | None, index: int, spec: dict) -> SimpleNamespace:
        resolver = SimpleNamespace(
            cluster_spec=lambda: SimpleNamespace(as_dict=lambda: spec),
            task_type=kind,
            task_id=index,
        )
        return SimpleNamespace(cluster_resolver=resolver)

    two = {"worker": ["a:1", "b:1"]}
    assert worker_index(strategy("worker", 1, two)) == (1, 2)
    assert is_chief(strategy("worker", 0, two)) and not is_chief(strategy("worker", 1, two))
    with_chief = {"chief": ["c:1"], "worker": ["a:1", "b:1"]}
    assert worker_index(strategy("chief", 0, with_chief)) == (0, 3)
    assert worker_index(strategy("worker", 0, with_chief)) == (1, 3)
    assert worker_index(SimpleNamespace()) == (0, 1)  # OneDeviceStrategy: no cluster
    assert worker_index(strategy(None, 0, {})) == (0, 1)


def test_a_bad_tf_config_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from tfkws.errors import TfkwsError
    from tfkws.training.strategy import make_strategy

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}}')
    with pytest.raises(TfkwsError, match="TF_CONFIG is not a tf.distribute cluster config"):
        make_strategy("multiworker")
    monkeypatch.setenv(
        "TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}'
    )
    with pytest.raises(TfkwsError, match="task type 'ps' is not in the cluster"):
        make_strategy("multiworker")
