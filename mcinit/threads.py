"""Work on Python threads over nogil numba functions.

The kernels' work units and the summary jobs run here rather than in parallel numba
functions: compiling a parallel numba function re-optimises every function it calls,
seconds of a newcomer's first run.  The thread count is numba's (``--threads``)."""

import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["on_threads"]

_POOL = None
_LOCK = threading.Lock()


def on_threads(jobs):
    """Run the callables (each a call of a nogil @njit function) on numba's thread count of
    Python threads, taken in list order as threads come free; serially on one thread."""
    global _POOL
    from numba import get_num_threads

    threads = get_num_threads()
    if threads <= 1 or len(jobs) <= 1:
        for job in jobs:
            job()
        return
    with _LOCK:     # the engine calls this from two threads (a batch's fill, the last one's reduction)
        if _POOL is None or _POOL._max_workers != threads:
            _POOL = ThreadPoolExecutor(threads, thread_name_prefix="mcinit")
        pool = _POOL
    for f in [pool.submit(job) for job in jobs]:
        f.result()
