"""Dask: the same partials on a cluster give the same bytes as one process."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import numpy as np
import polars as pl
import pytest

from heatengine import AggregateConfig, GridSpec, aggregate
from heatengine.synthetic import DEMO_END, generate_taps
from tests.factory import KEY

distributed = pytest.importorskip("distributed")
from heatengine import distributed as heat_dask  # noqa: E402

KEY_TEXT = "distributed test key, long enough to use"
CONFIG = AggregateConfig(grid=GridSpec(32, 64), segments=("platform",), as_of=DEMO_END)


@pytest.fixture(scope="module")
def client():
    client = heat_dask.local_client(2, threads_per_worker=1)
    yield client
    client.close()
    client.cluster.close()


@pytest.fixture(scope="module")
def taps() -> pl.DataFrame:
    return generate_taps(140_000, seed=21)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "key"
    path.write_text(KEY_TEXT)
    return path


def store_bytes(heatmaps, directory):
    heatmaps.write(directory)
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def single_process(files):
    from heatengine.pseudonym import PseudonymKey

    return aggregate(files, CONFIG, key=PseudonymKey(KEY_TEXT.encode()))


@pytest.mark.parametrize("partitions", [1, 2, 4, 7])
def test_byte_identical_to_one_process(client, taps, key_file, tmp_path, partitions):
    files = []
    for i, piece in enumerate(np.array_split(np.arange(taps.height), partitions)):
        path = tmp_path / "lake" / f"part-{i}.parquet"
        path.parent.mkdir(exist_ok=True)
        taps[piece].write_parquet(path)
        files.append(path)
    expected = store_bytes(single_process(files), tmp_path / "one")
    random.Random(partitions).shuffle(files)
    result = heat_dask.aggregate(files, CONFIG, client, key_file=key_file)
    assert store_bytes(result, tmp_path / "dask") == expected
    assert result.stats.rows_quarantined > 0  # malformed rows counted exactly as at home


def test_bad_rows_in_one_file_are_quarantined_as_on_one_machine(client, taps, key_file, tmp_path):
    good, bad = taps.head(50_000), taps.slice(50_000, 20_000)
    bad = bad.with_columns(x=pl.when(pl.int_range(pl.len()) % 3 == 0).then(7.0).otherwise("x"))
    good.write_parquet(tmp_path / "good.parquet")
    bad.write_parquet(tmp_path / "bad.parquet")
    files = [tmp_path / "good.parquet", tmp_path / "bad.parquet"]
    result = heat_dask.aggregate(files, CONFIG, client, key_file=key_file)
    expected = single_process(files)
    assert result.stats == expected.stats
    assert result.stats.quarantined["coordinate_out_of_range"] > 1_000


def test_dask_dataframe_input(client, taps, key_file):
    dd = pytest.importorskip("dask.dataframe")
    small = taps.head(20_000)  # data inside the task graph stays small
    frame = dd.from_pandas(small.to_pandas(), npartitions=5)
    result = heat_dask.aggregate(frame, CONFIG, client, key_file=key_file)
    expected = single_process(small)
    assert result.cells.equals(expected.cells)
    np.testing.assert_array_equal(result.grids, expected.grids)


def test_a_worker_dying_mid_run_does_not_change_the_result(client, taps, key_file, tmp_path):
    files = []
    for i in range(8):
        path = tmp_path / f"part-{i}.parquet"
        pl.concat([taps] * 4).slice(i * 70_000, 70_000).write_parquet(path)
        files.append(path)
    expected = store_bytes(single_process(files), tmp_path / "one")
    outcome = {}
    run = threading.Thread(
        target=lambda: outcome.update(
            result=heat_dask.aggregate(files, CONFIG, client, key_file=key_file)
        )
    )
    run.start()
    deadline = time.monotonic() + 30
    busy = {}
    while not busy and time.monotonic() < deadline:  # wait for a worker with a task
        busy = {w: keys for w, keys in client.processing().items() if keys}
        time.sleep(0.01)
    victim = client.run(os.getpid, workers=[sorted(busy)[0]])
    assert run.is_alive()  # the worker dies while the run is still going
    os.kill(next(iter(victim.values())), signal.SIGKILL)
    run.join(timeout=120)
    assert "result" in outcome
    assert store_bytes(outcome["result"], tmp_path / "dask") == expected
    client.wait_for_workers(2, timeout=60)


def test_as_of_is_required_and_keys_stay_home(client):
    from heatengine.errors import HeatengineError

    with pytest.raises(HeatengineError, match=r"needs config\.as_of"):
        heat_dask.build_partial_distributed([], AggregateConfig(), client)
    with pytest.raises(TypeError, match=r"(?i)serialize|pickle"):
        client.submit(lambda k: k, KEY).result()


def test_cli_local_workers_give_the_same_store(taps, key_file, tmp_path):
    import subprocess
    import sys

    taps.head(40_000).write_parquet(tmp_path / "taps.parquet")
    common = [str(tmp_path / "taps.parquet"), "--key-file", str(key_file), "--as-of",
              "2026-11-30", "--segments", "platform", "--grid", "32x64"]  # fmt: skip
    for name, extra in (("one", []), ("dask", ["--local-workers", "2"])):
        done = subprocess.run(
            [sys.executable, "-m", "heatengine.cli", "aggregate", *common, "--out",
             str(tmp_path / name), *extra],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    for file in ("cells.parquet", "grids.npz", "manifest.json"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "dask" / file).read_bytes()
