"""``edgecodec profile``: the whole pipeline in-process (and once as two processes), its JSON, CSV and plot, and errors.

Runs use the torch backend with one thread on a tiny synthetic source, so that no exported graph is needed and they stay
short on two shared cores. No test asserts a wall-clock time.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
import torch

from edgecodec import profiling
from edgecodec.cli import main as cli_main
from edgecodec.profiling import NET_DECODE, NET_ENCODE, STAGES, frame_row
from edgecodec.timing import StageTimer, substage

STAT_KEYS = {"p50_ms", "p95_ms", "p99_ms", "max_ms"}
FRAMES = 5
SIZES = ("64x48", "48x32")


def _profile(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli_main(["profile", *args])
    return status, out.getvalue()


@pytest.fixture(scope="module")
def inprocess(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One profile of two sizes (one model load); the first run is the 64x48 one."""
    tmp = tmp_path_factory.mktemp("profile")
    paths = {name: tmp / f"profile.{name}" for name in ("json", "csv", "png")}
    outputs = ["--json", str(paths["json"]), "--csv", str(paths["csv"]), "--plot", str(paths["png"])]
    threads = torch.get_num_threads()
    args = ["--synthetic", "--size", *SIZES, "--frames", str(FRAMES), "--backend", "torch", "--threads", "1",
            "--mode", "lockstep", "--no-x264"]  # fmt: skip
    status, table = _profile(*args, *outputs)
    assert status == 0 and torch.get_num_threads() == threads  # --threads is undone afterwards
    runs = json.loads(paths["json"].read_text())["runs"]
    return {"table": table, "runs": runs, "run": runs[0], **paths}


def _check_stats(s: dict) -> None:
    assert STAT_KEYS <= set(s)
    assert s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"]


def test_json_has_every_stage_and_ordered_percentiles(inprocess: dict) -> None:
    for run, size in zip(inprocess["runs"], ([64, 48], [48, 32]), strict=True):
        assert {"stages", "glass_to_glass", "fps", "cpu"} <= set(run)
        assert list(run["stages"]) == list(STAGES)  # preprocess .. postprocess, capture and the derived receive
        for s in [*run["stages"].values(), run["glass_to_glass"]]:
            _check_stats(s)
        assert run["frames"] == FRAMES and run["dropped"] == 0 and run["size"] == size
        assert run["mode"] == "lockstep" and run["backend_used"] == "torch"
        assert run["fps"] > 0 and run["glass_to_glass"]["p50_ms"] > 0
        assert run["cpu"]["wall_s"] > 0 and run["cpu"]["processes"]["profile"]["cpu_s"] > 0
        assert sum(run["layers"].values()) == FRAMES


def test_stage_means_add_up_to_glass_to_glass(inprocess: dict) -> None:
    ss = inprocess["run"]["stage_sum"]
    assert ss["timed_stages"][0] == "preprocess" and ss["timed_stages"][-1] == "output"
    total = ss["mean_timed_ms"] + ss["mean_receive_ms"] + ss["mean_untimed_ms"]
    assert total == pytest.approx(ss["mean_glass_to_glass_ms"], abs=0.01)
    assert ss["gap_ms"] == pytest.approx(ss["glass_to_glass_p50_ms"] - ss["p50_sum_ms"], abs=0.01)
    stages = inprocess["run"]["stages"]
    assert stages["encode"]["mean_ms"] > 0 and stages["preprocess"]["mean_ms"] > 0  # the split is measured


def test_csv_has_one_row_per_frame(inprocess: dict) -> None:
    with open(inprocess["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["size"] for r in rows] == [SIZES[0]] * FRAMES + [SIZES[1]] * FRAMES
    assert {f"{s}_ms" for s in STAGES} <= set(rows[0]) and "glass_to_glass_ms" in rows[0]
    assert [int(r["seq"]) for r in rows[:FRAMES]] == list(range(2, 2 + FRAMES))  # after the 2 warm-up frames
    assert all(float(r["glass_to_glass_ms"]) > float(r["encode_ms"]) for r in rows)


def test_plot_is_a_png(inprocess: dict) -> None:
    assert inprocess["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_states_the_stage_sum(inprocess: dict) -> None:
    table = inprocess["table"]
    for name in (*STAGES, "glass-to-glass", "fps", "CPU", "comparison"):
        assert name in table
    assert "Do the stages add up to glass-to-glass?" in table and "gap" in table
    assert max(len(line) for line in table.splitlines()) <= 130


def test_pipelined_names_the_stage_that_limits_the_frame_rate_and_times_x264(tmp_path: Path) -> None:
    """Sender and receiver pipelined in one process, every frame shown; per-stage throughput and the x264 anchor."""
    path = tmp_path / "pipelined.json"
    status, table = _profile("--synthetic", "--size", "64x48", "--frames", "6", "--backend", "torch", "--threads", "1",
                             "--mode", "pipelined", "--max-latency", "0", "--json", str(path))  # fmt: skip
    assert status == 0
    run = json.loads(path.read_text())
    assert run["mode"] == "pipelined" and run["model"] == "hqa5-cpu" and run["frames"] == 6 and run["dropped"] == 0
    assert set(run["stage_fps"]) == {"capture", "encode", "code+send", "receive+entropy", "decode+output"}
    assert run["limiting_stage"] == min(run["stage_fps"], key=run["stage_fps"].get)
    x = run["x264"]
    assert (
        x["encode_ms"] > 0
        and x["decode_ms"] > 0
        and x["ratio"] == pytest.approx(run["codec_ms"] / (x["encode_ms"] + x["decode_ms"]), rel=0.01)
    )
    assert "the limit:" in table and "times x264's" in table


def test_two_processes(tmp_path: Path) -> None:
    """A real edgecodec send and edgecodec receive; their stats are merged by sequence number."""
    path = tmp_path / "processes.json"
    status, _ = _profile("--mode", "processes", "--synthetic", "--size", "64x48", "--frames", "3", "--warmup", "0",
                         "--backend", "torch", "--threads", "1", "--json", str(path))  # fmt: skip
    assert status == 0
    run = json.loads(path.read_text())
    assert run["mode"] == "processes" and run["frames"] == 3 and run["dropped"] == 0
    assert set(run["stages"]) == set(STAGES) - {"preprocess", "postprocess"}  # inside encode/decode in the CLIs
    for s in [*run["stages"].values(), run["glass_to_glass"]]:
        _check_stats(s)
    assert set(run["cpu"]["processes"]) == {"sender", "receiver"} and run["fps"] > 0
    assert all(p["cpu_s"] > 0 for p in run["cpu"]["processes"].values())


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "one of the arguments"),
        (["--synthetic", "--size", "64"], "expected WxH"),
        (["--synthetic", "--frames", "0"], "must be >= 1"),
        (["--synthetic", "--mode", "threads"], "invalid choice"),
        (["--synthetic", "--backend", "nope"], "unknown backend"),
        (["--synthetic", "--rate-config", "nope"], "unknown rate preset"),
        (["--synthetic", "--json", "no/such/folder/x.json"], "folder does not exist"),
        (["--video", "no-such-clip.mp4"], "not found"),
    ],
)
def test_bad_arguments_are_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["profile", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0, err


def test_substage_times_inside_the_open_frame_stage() -> None:
    ticks = iter(range(0, 10**12, 1_000_000))  # every clock read advances 1 ms
    timer = StageTimer(clock=lambda: next(ticks))
    with substage("nowhere"):  # no frame stage open: nothing is timed
        pass
    stages = timer.frame()
    with stages("encode"), substage(NET_ENCODE):
        pass
    assert stages.done() == {"encode": 2.0, NET_ENCODE: 1.0}  # the outer stage excludes the substage


def test_frame_row_from_stats_records() -> None:
    sent = {"seq": 4, "timestamp_us": 1_000_000, "latency_ms": 30.0,
            "ms": {"capture": 2.0, "encode": 1.0, NET_ENCODE: 20.0, "entropy": 3.0, "rate": 0.5, "packet": 0.2,
                   "send": 0.3}}  # fmt: skip
    got = {"seq": 4, "layer": 3, "bits": 800, "timestamp_us": 1_000_000, "latency_ms": 60.0,
           "ms": {"parse": 0.1, "entropy": 1.9, "decode": 2.0, NET_DECODE: 15.0, "output": 1.0}}  # fmt: skip
    row = frame_row(sent, got)
    assert row["preprocess"] == 1.0 and row["encode"] == 20.0 and row["entropy_encode"] == 3.0
    assert row["postprocess"] == 2.0 and row["decode"] == 15.0 and row["entropy_decode"] == 1.9
    assert row["receive"] == pytest.approx(60.0 - 20.0 - 30.0)  # taken at 40 ms, queued at 30 ms
    assert row["glass_to_glass"] == 60.0
    del sent["ms"][NET_ENCODE], got["ms"][NET_DECODE]  # the CLIs' records: no split
    row = frame_row(sent, got)
    assert "preprocess" not in row and "postprocess" not in row and row["encode"] == 1.0


def test_parser_replaces_size_and_frames() -> None:
    ns = profiling.build_parser().parse_args(["--synthetic", "--size", "64x48", "32x32"])
    assert ns.size == [(64, 48), (32, 32)] and ns.frames == 100 and ns.warmup == 2 and ns.backend == ["auto"]


@pytest.mark.parametrize("side", ["sender", "receiver"])
def test_one_side_alone(side: str, tmp_path: Path) -> None:
    """--only sender|receiver: one side pipelined as it runs on a machine of its own."""
    path = tmp_path / f"{side}.json"
    status, table = _profile("--only", side, "--synthetic", "--size", "64x48", "--frames", "6", "--fps", "25",
                             "--backend", "torch", "--threads", "1", "--json", str(path))  # fmt: skip
    assert status == 0 and f"{side} only" in table
    run = json.loads(path.read_text())
    assert run["side"] == side and run["frames"] + run["dropped"] >= 6 and run["fps"] > 0
    assert ("entropy_encode" if side == "sender" else "entropy_decode") in run["stages"]


def test_a_source_shorter_than_frames_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """--frames beyond the end of a clip: the run measures what there is and says so in one line."""
    clip = Path(__file__).resolve().parents[1] / "edgecodec" / "samples" / "foreman_352x288_75f.mp4"
    status, _ = _profile("--video", str(clip), "--size", "64x48", "--frames", "80", "--backend", "torch",
                         "--threads", "1", "--mode", "lockstep", "--no-x264")  # fmt: skip
    assert status == 0
    assert (
        "the source ended after 73 of the 80 frames asked for (--frames); --loop repeats it" in capsys.readouterr().err
    )
