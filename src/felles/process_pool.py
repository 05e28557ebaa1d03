"""Process pools whose workers go when the process that made them goes.

A `ProcessPoolExecutor` worker holds both ends of its task queue, so it never sees
end-of-file when its parent dies. Suppose the parent is killed (SIGKILL, a crash) or
exits before the pool's manager thread has told the workers to stop. uvicorn does
exactly that: it re-raises SIGTERM after its graceful shutdown. Then the workers run on
for good, each holding a Python with Felles imported. So each worker here watches its
parent and exits once it is gone.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
import time

PARENT_CHECK_SECONDS = 0.5


def process_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """`workers` spawned processes: spawned, not forked, because a fork of a process
    with an event loop and driver threads can inherit locks held by threads that do not
    exist in the child."""
    return concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )


def exit_with_parent(parent: int) -> None:
    """Run in each worker as it starts: a thread that ends the worker once `parent` is
    no longer its parent (it was re-parented, so the parent is dead)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
