"""What the study form needs before posting: the preset catalogue and a study's estimate.

GET /api/presets lists every preset design space with its family, description and ranges;
POST /api/studies/estimate takes the same spec as POST /api/studies and answers the trials
per level, the images and the time it would take here (search.estimate), creating nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from anynet.spaces.catalog import catalog
from api.http.deps import (
    ERRORS,
    MUTATING,
    SPEC_BODY,
    error_body,
    get_limits,
    get_store,
    posted_spec,
    require_token,
)
from api.http.limits import SpecLimits
from api.http.schemas import Estimate, Preset
from search.creator import ChildFailed
from search.estimate import Rate, estimate, prices_or_error, raise_or_prices, trials_rate

router = APIRouter(tags=["form"])
log = logging.getLogger("dse.api")
ESTIMATES = 2  # estimates priced at once (each samples at most PRICE_MAX_DRAWS per space)
PRICE_SECONDS = 60.0  # a pricing child is stopped after this long
PRICE_MEMORY = 1024 * 2**20  # or past this many resident bytes
PRICES = 256  # the latest specs' prices kept


@router.get("/api/presets", response_model=list[Preset])
def list_presets():
    """Every preset design space: name, family, description, block, input and ranges."""
    return catalog()


@router.post(
    "/api/studies/estimate",
    response_model=Estimate,
    responses={
        422: ERRORS[422],
        401: MUTATING[401],
        415: error_body("neither JSON nor YAML"),
        503: error_body("pricing the spaces failed; Retry-After"),
    },
    openapi_extra=SPEC_BODY,
    dependencies=[Depends(require_token)],  # it samples and may start the speed probe
)
async def estimate_study(
    request: Request,
    store=Depends(get_store),
    limits: SpecLimits = Depends(get_limits),
    workers: int = Query(1, ge=1, le=4096, description="workers sharing the trials"),
):
    """The trials per level, training and evaluated images, and time of a spec (nothing stored).

    The time uses the images/s of the latest finished trials in this store, scaled by flops,
    or else a short training on this server's device (measured once, in a child process:
    SpeedProbe); `rate.source` says which. The networks' flops are the mean of the first
    networks creation would sample from each space (`spaces[].flops_note`; sampled in a
    child process); a bound no network met within the estimate's draws is a 422 naming
    it. Needs the token when one is set.
    """
    spec = await posted_spec(request, limits)
    # prices first: a bound no network meets is a 422 before any probe starts
    flops = await _prices(request, spec)
    answer = await run_in_threadpool(estimate, spec, None, workers, flops)
    rate = await run_in_threadpool(trials_rate, store.db)
    unmeasured = None
    if rate is None:
        try:
            rate = await request.app.state.speed_probe.rate()
        except RuntimeError as e:  # no speed: counts still hold
            unmeasured = f"speed unknown: no finished trials in this store and {e}"
    if rate is not None:
        answer = await run_in_threadpool(estimate, spec, rate, workers, flops)
    if unmeasured:
        answer["note"] = "; ".join(n for n in (answer["note"], unmeasured) if n)
    return answer


async def _prices(request: Request, spec) -> list:
    """The spaces' prices (search.estimate.prices), sampled in a forkserver child.

    Sampling is CPU-bound Python and numpy: in this process it held /healthz up to 2 s
    while 24 estimates of an impossible bound ran (benchmarks/bench_hostile_reads.py).
    ESTIMATES children at once, each stopped past PRICE_SECONDS; answers (and errors) are
    kept for the same spec, the PRICES latest.
    """
    state = request.app.state
    if getattr(state, "estimates", None) is None:  # made in the event loop of the first one
        state.estimates, state.prices = CapacityLimiter(ESTIMATES), OrderedDict()
    key = spec.model_dump_json()
    answer = state.prices.get(key)
    if answer is None:
        try:
            answer = await to_thread.run_sync(
                state.creator.call, prices_or_error, (key,), PRICE_SECONDS, PRICE_MEMORY,
                limiter=state.estimates,
            )  # fmt: skip
        except ChildFailed as e:
            log.warning("estimate: pricing failed: %s", e)
            raise HTTPException(
                503, f"estimate: pricing the spaces failed ({e}); retry later",
                headers={"Retry-After": "5"},
            ) from None  # fmt: skip
        state.prices[key] = answer
        while len(state.prices) > PRICES:
            state.prices.popitem(last=False)
    return raise_or_prices(answer)


def measure() -> dict:
    """In a child: worker.bench.measured_rate() (the speed probe's default target)."""
    from worker.bench import measured_rate

    return measured_rate()


class SpeedProbe:
    """This machine's training speed, measured once in a forkserver child (Creator.call).

    One probe runs at a time (concurrent estimates wait for the same one), killed past
    `seconds` or `memory` bytes; its answer is kept, a failure for `retry` seconds (so a
    stream of estimates cannot start a probe each). Issue 23: the probe trained in the
    server process took 38-50 s, +600 MB and stalled /healthz.
    """

    def __init__(self, creator, target=measure, seconds=None, memory=None, retry=300.0):
        env = os.environ
        self.creator, self.target, self.retry = creator, target, retry
        self.seconds = float(seconds or env.get("DSE_PROBE_SECONDS") or 300)
        self.memory = int(memory or float(env.get("DSE_PROBE_MB") or 2048) * 2**20)
        self._rate = None
        self._failed: tuple[float, str] | None = None  # (when, why)
        self._running: asyncio.Future | None = None
        self.probes = 0  # children started (tests and benchmarks read it)

    async def rate(self):
        """The measured search.estimate.Rate; RuntimeError saying why there is none."""
        if self._rate is not None:
            return self._rate
        if self._failed and time.monotonic() - self._failed[0] < self.retry:
            raise RuntimeError(self._failed[1])
        if self._running is None:
            self._running = asyncio.ensure_future(self._probe())
        return await asyncio.shield(self._running)

    async def _probe(self):
        self.probes += 1
        try:
            m = await run_in_threadpool(
                self.creator.call, self.target, (), self.seconds, self.memory
            )
            note = (
                f"no finished trials in this store yet: {m['network']} trained on this "
                f"server's {m['device']} at {m['images_per_s']:.0f} images/s, scaled by flops"
            )
            self._rate = Rate("measured", m["flop_per_s"], 0, m["device"], note)
            return self._rate
        except Exception as e:
            log.warning("estimate: the speed probe failed: %s", e)
            self._failed = (time.monotonic(), f"the speed probe failed ({e})")
            raise RuntimeError(self._failed[1]) from None
        finally:
            self._running = None
