"""A SIGTERM that arrives while `ray.init` runs (Ray's own handler is installed then) stops the driver
as any other SIGTERM does: `Terminated`, exit 143, instead of Ray's bare exit 15."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from harness.engine.cluster import start_ray
from harness.engine.run import EXIT_TERMINATED, _stop_code
from harness.engine.signals import SigtermAsInterrupt, Terminated

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _sigterm_once_ray_holds_the_handler(ours, fired: threading.Event) -> None:
    """Watches the SIGTERM handler; the moment it is no longer ours, ray.init is running with its
    own: send the signal then (a real SIGTERM, to this process)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if signal.getsignal(signal.SIGTERM) is not ours:
            os.kill(os.getpid(), signal.SIGTERM)
            fired.set()
            return
        time.sleep(0.0002)


def test_a_sigterm_during_ray_init_is_terminated_not_exit_15():
    import ray

    fired = threading.Event()
    try:
        with SigtermAsInterrupt():
            ours = signal.getsignal(signal.SIGTERM)
            threading.Thread(target=_sigterm_once_ray_holds_the_handler, args=(ours, fired), daemon=True).start()
            with pytest.raises(Terminated) as stop:
                start_ray(None, 1)
            assert fired.is_set()
            assert signal.getsignal(signal.SIGTERM) is ours  # our handler is back for the rest of the run
            assert _stop_code(stop.value) == EXIT_TERMINATED
    finally:
        ray.shutdown()
