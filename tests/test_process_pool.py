"""felles.process_pool: the pools' workers die with the process that made them, even when
it is killed and can shut nothing down."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.processes import HAS_PROC, alive, left_running

pytestmark = pytest.mark.skipif(not HAS_PROC, reason="needs /proc")


# Starts a pool, says its workers' pids, and kills itself when told to.
PARENT = """
import json, multiprocessing, os, signal, sys
from felles.process_pool import process_pool
pool = process_pool(2)
list(pool.map(abs, range(100)))
print(json.dumps([p.pid for p in multiprocessing.active_children()]), flush=True)
sys.stdin.readline()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_workers_exit_when_their_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdin is not None and parent.stdout is not None
    try:
        workers = json.loads(parent.stdout.readline())
        assert workers and all(alive(pid) for pid in workers), workers
        parent.stdin.write("\n")
        parent.stdin.flush()
        assert parent.wait(timeout=30) == -9
        assert left_running(workers) == [], "workers outlived their parent"
    finally:
        parent.kill()
        parent.stdin.close()
        parent.stdout.close()
