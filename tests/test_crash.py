"""Kill test: a real ``viber-publisher run`` posting a folder of notes to the
stand-in is killed with SIGKILL at random moments and restarted, eight times,
then run to completion. No note is posted twice unless it is marked
``unknown``; none is lost.

The scenario is bench/faults.py's (``python bench/faults.py --kills 50`` runs
it longer).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import STANDIN_TOKEN, load_bench

from publisher.adapters.sqlite import Store
from publisher.adapters.standin import ViberStandIn

pytestmark = pytest.mark.slow


def test_killed_and_restarted_eight_times_nothing_twice_nothing_lost(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    bench = load_bench()
    seed = random.randrange(1_000_000)
    output: list[str] = []
    figures = bench.run_kills(
        standin, STANDIN_TOKEN, tmp_path, posts=30, kills=8, seed=seed, on_output=output.append
    )
    report = f"seed {seed}\n" + "\n".join(figures.lines()) + "\n" + "".join(output)
    assert figures.kills >= 4, report  # killed while posting, again and again
    assert figures.final_exit == 0, report
    assert figures.duplicates == [], report
    assert figures.losses == [], report
    assert figures.phantoms == [], report
    assert figures.failed == 0, report
    assert figures.posted + figures.unknown == 30, report
    with Store.open(tmp_path / "state.sqlite3", read_only=True) as store:
        for row in store.outbox("unknown"):
            assert row.reason is not None and "interrupted while sending" in row.reason, report


def test_a_kill_mid_request_leaves_unknown_and_it_is_not_sent_again(
    tmp_path: Path, standin: ViberStandIn
) -> None:
    bench = load_bench()
    config = bench.write_kill_setup(tmp_path, standin.api_url, posts=2)
    env = dict(os.environ, VIBER_AUTH_TOKEN=STANDIN_TOKEN)
    command = [sys.executable, "-m", "publisher", "--config", str(config)]
    standin.fail_next("slow", delay=60.0)  # recorded at once, answered never (in time)
    process = subprocess.Popen(
        [*command, "run"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not standin.posts and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        assert len(standin.posts) == 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    recorded = standin.posts
    standin.clear()

    done = subprocess.run(
        [*command, "run", "--once"], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    log = done.stderr.decode()
    assert done.returncode == 0, log
    assert "fate is unknown" in log
    texts = [p.payload["text"] for p in [*recorded, *standin.posts]]
    assert sorted(texts) == [bench.text_of(0), bench.text_of(1)]  # each once
    with Store.open(tmp_path / "state.sqlite3", read_only=True) as store:
        statuses = {row.payload["text"]: row.status for row in store.outbox()}
    assert statuses == {recorded[0].payload["text"]: "unknown", texts[1]: "posted"}
