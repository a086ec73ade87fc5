"""benchmarks/profile_decode.py on the CPU: it profiles both modes and groups the work; with
--compile-state the state machine's ~170 ops per step collapse into a few."""
import pytest

import train_fixtures as fx


@pytest.fixture(scope="module")
def profiler():
    return fx.benchmark_script("profile_decode")


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("long") / "data"
    fx.write_dataset(out, fx.arith_splits(n_train=4, n_val=2, n_test=8, ops=(8, 10)))
    return out


def run(profiler, data, *extra):
    return profiler.main(["--data", str(data), "--shape", "tiny", "--context", "160", "--batch", "2", "--steps", "2",
                          "--device", "cpu", *extra])


def test_profile_reports_both_modes_by_group(profiler, long_data):
    r = run(profiler, long_data)
    for mode in ("dense", "sparse"):
        m = r["modes"][mode]
        assert m["launches_per_step"] > 50 and m["us_per_step"] > 0
        assert "gemm" in m["groups"] and m["groups"]["gemm"]["launches_per_step"] >= 4  # >= 2 layers x 2 GEMMs
        assert abs(sum(g["us_per_step"] for g in m["groups"].values()) - m["us_per_step"]) < 1e-6 * m["us_per_step"] + 1e-9
        assert m["graph_step_ms"] is None  # no CUDA graph on a CPU


def test_compiled_state_machine_takes_fewer_launches(profiler, long_data):
    plain = run(profiler, long_data)["modes"]["sparse"]["launches_per_step"]
    fused = run(profiler, long_data, "--compile-state")["modes"]["sparse"]["launches_per_step"]
    assert fused < plain - 100, (plain, fused)
