"""Timing: variants timed round by round, interleaved, so that a slow spell of the machine
falls on every variant alike.
"""
import time

import mxnet as mx
import numpy as np


# ---------------------------------------------------------------------------- timing
class Timer:
    """A named workload: ``run(iters)`` returns the seconds ``iters`` calls took."""

    def __init__(self, name, run, images_per_call):
        self.name, self.run, self.images = name, run, images_per_call
        self.samples = []

    def median_rate(self):
        return float(np.median(self.samples)) if self.samples else None


def local(name, fn, images):
    """A timer for an in-process callable that blocks until its work is done."""
    def run(iters):
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        return time.perf_counter() - start
    return Timer(name, run, images)


def interleaved(timers, repeats, warmup, iters, progress=None):
    """Warm each timer up, then time ``repeats`` rounds of all timers in turn.

    Each sample is images per second over ``iters`` calls; a timer that fails is dropped
    with its error recorded instead of aborting the others.
    """
    errors = {}
    for t in list(timers):
        try:
            t.run(warmup)
        except Exception as err:  # a peer's failure must not lose the other numbers
            errors[t.name] = f"{type(err).__name__}: {err}"
            timers.remove(t)
    for r in range(repeats):
        for t in timers:
            seconds = t.run(iters)
            t.samples.append(iters * t.images / seconds)
        if progress:
            progress(r + 1, repeats)
    return errors


def gemm_gflops(n=2048, repeats=5):
    """fp32 GEMM rate through mxnet's oneDNN ``FullyConnected`` on the same threads.

    ``n x n`` by ``n x n``: ``2 n^3`` floating-point operations; the median of
    ``repeats`` after one warm-up.
    """
    a = mx.nd.random.uniform(shape=(n, n))
    b = mx.nd.random.uniform(shape=(n, n))

    def once():
        mx.nd.FullyConnected(a, b, no_bias=True, num_hidden=n).wait_to_read()
    once()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        rates.append(2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return float(np.median(rates))
