"""`edgecodec encode | decode | info`, called in-process: bit-exact round trips through .ecz files, and clean errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA

from edgecodec import bitstream, cli
from edgecodec.capture import VideoSource
from edgecodec.codec import Codec
from edgecodec.container import container_bytes, read_container
from edgecodec.data import read_rgb
from edgecodec.errors import TrailingDataError, TruncatedError
from edgecodec.filecodec import FrameDecoder, file_info, main_decode, main_encode, main_info

DATA = SHARED_DATA


def shared(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared data file {path} is absent (set EDGECODEC_DATA, see README 'Data')")
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec("hqa5", backend="auto")  # the backend the CLI uses by default


def synthetic_image(path: Path, width: int = 100, height: int = 75, seed: int = 0) -> np.ndarray:
    """An RGB image with gradients and shapes, written losslessly to ``path``; a size that needs padding."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(3 * x + 40 * seed) % 256, (2 * y) % 256, ((x + y) * (seed + 1)) % 256], -1).astype(np.uint8)
    cv2.circle(rgb, (width // 3, height // 2), height // 4, (250, 240, 20), -1)
    cv2.rectangle(rgb, (width // 2, 5), (width - 8, height // 3), (20, 30, 200), -1)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return rgb


def file_ids(codec: Codec, ecz: Path) -> list[np.ndarray]:
    """The id grid of every packet of a file, decoded in order as a receiver would (P-frames against their
    references)."""
    decoder = FrameDecoder(codec)
    return [decoder.ids(p) for p in read_container(ecz)[1]]


def check_every_layer(codec: Codec, image: Path, tmp_path: Path) -> None:
    rgb = read_rgb(image)
    code = codec.encode(rgb)
    for layer in range(1, codec.num_layers + 1):
        ecz, png = tmp_path / f"layer{layer}.ecz", tmp_path / f"layer{layer}.png"
        assert main_encode([str(image), "-o", str(ecz), "--layer", str(layer)]) == 0
        assert main_decode([str(ecz), "-o", str(png)]) == 0
        header, packets = read_container(ecz)
        assert (header.fingerprint, header.model_name, header.num_frames) == (codec.fingerprint, "hqa5", 1)
        assert [(p.layer, p.frame_h, p.frame_w) for p in packets] == [(layer, *rgb.shape[:2])]
        ids = code.ids[layer - 1]
        (decoded_ids,) = file_ids(codec, ecz)
        np.testing.assert_array_equal(decoded_ids, ids)
        np.testing.assert_array_equal(read_rgb(png), codec.decode(ids, layer, code.size))


def test_synthetic_image_every_layer_is_bit_exact(codec: Codec, tmp_path: Path) -> None:
    image = tmp_path / "synthetic.png"
    synthetic_image(image)
    check_every_layer(codec, image, tmp_path)


def test_kodak_image_every_layer_is_bit_exact(codec: Codec, tmp_path: Path) -> None:
    check_every_layer(codec, shared("eval", "kodak", "kodim23.png"), tmp_path)


def test_encode_summary_and_resize(codec: Codec, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, ecz = tmp_path / "in.png", tmp_path / "out.ecz"
    synthetic_image(image, 120, 90)
    assert main_encode([str(image), "-o", str(ecz), "--layer", "2", "--size", "64x48"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{ecz}: 1 frame 64x48 at layer 2, {ecz.stat().st_size} bytes, ") and out.endswith(" bpp")
    (packet,) = read_container(ecz)[1]
    assert (packet.frame_w, packet.frame_h, packet.seq) == (64, 48, 0)
    assert not list(tmp_path.glob(".*part*"))


@pytest.mark.parametrize("clip", ["foreman_cif_352x288_299f.264", "static_street_690x388_example01.mp4"])
def test_video_ids_in_file_equal_ids_encoded(codec: Codec, tmp_path: Path, clip: str) -> None:
    """--intra-only: every frame's ids are the encoder's. With P-frames (the default) every id is either the
    encoder's or, where conditional replenishment kept it, the one the frame before had."""
    path, ecz, inter = shared("video", clip), tmp_path / "clip.ecz", tmp_path / "inter.ecz"
    args = [str(path), "--layer", "2", "--frames", "5", "--size", "176x144"]
    assert main_encode([*args, "-o", str(ecz), "--intra-only"]) == 0
    assert main_encode([*args, "-o", str(inter)]) == 0
    with VideoSource(path, size=(176, 144), frames=5) as source:
        fps = source.native_fps
        expected = [codec.encode(f.rgb).ids[1] for f in source]
    header, packets = read_container(ecz)
    assert header.num_frames == len(packets) == 5 and header.fps == pytest.approx(fps, rel=1e-3)
    assert [p.seq for p in packets] == list(range(5))
    assert [p.timestamp_us for p in packets] == [round(i * 1e6 / header.fps) for i in range(5)]
    assert not any(p.is_inter for p in packets)
    for got, want in zip(file_ids(codec, ecz), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    inter_packets = read_container(inter)[1]
    assert [p.timestamp_us for p in inter_packets] == [p.timestamp_us for p in packets]
    got = file_ids(codec, inter)
    np.testing.assert_array_equal(got[0], expected[0])
    for i, packet in enumerate(inter_packets[1:], start=1):
        assert (
            packet.size <= packets[i].size + bitstream.INTER_HEADER_SIZE - bitstream.HEADER_SIZE or not packet.is_inter
        )
        assert ((got[i] == expected[i]) | (got[i] == got[i - 1])).all()


def test_video_decodes_to_frames_and_mp4(codec: Codec, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, ecz = shared("video", "multiscene_qcif_176x144_1700f.264"), tmp_path / "clip.ecz"
    assert main_encode([str(path), "-o", str(ecz), "--layer", "3", "--frames", "3"]) == 0
    assert main_decode([str(ecz), "-o", str(tmp_path / "f%02d.png")]) == 0
    for i, ids in enumerate(file_ids(codec, ecz)):
        np.testing.assert_array_equal(read_rgb(tmp_path / f"f{i:02d}.png"), codec.decode(ids, 3, (144, 176)))
    assert main_decode([str(ecz), "-o", str(tmp_path / "clip.mp4")]) == 0
    with VideoSource(tmp_path / "clip.mp4") as video:
        assert [f.size for f in video] == [(176, 144)] * 3
    capsys.readouterr()
    assert main_decode([str(ecz), "-o", str(tmp_path / "one.png"), "--frame", "2"]) == 0
    np.testing.assert_array_equal(read_rgb(tmp_path / "one.png"), read_rgb(tmp_path / "f02.png"))
    assert main_decode([str(ecz), "-o", str(tmp_path / "first.png")]) == 0
    assert "holds 3 frames; wrote frame 0 only" in capsys.readouterr().err
    np.testing.assert_array_equal(read_rgb(tmp_path / "first.png"), read_rgb(tmp_path / "f00.png"))


@pytest.fixture
def folder_ecz(tmp_path: Path) -> Path:
    """Three synthetic images of one size, encoded at layer 2 and 10 fps."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        synthetic_image(folder / f"{i}.png", 64, 48, seed=i)
    ecz = tmp_path / "frames.ecz"
    assert main_encode([str(folder), "-o", str(ecz), "--layer", "2", "--fps", "10"]) == 0
    return ecz


def test_info(codec: Codec, folder_ecz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main_info([str(folder_ecz), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    packets = read_container(folder_ecz)[1]
    bits = [8 * p.size for p in packets]
    assert info == file_info(folder_ecz)
    assert info["model"] == {
        "name": "hqa5",
        "fingerprint": codec.fingerprint.hex(),
        "held": True,
        "path": info["model"]["path"],
    }
    assert Path(info["model"]["path"]).name == "hqa5.safetensors"
    assert (info["frames"], info["fps"], info["fps_fraction"]) == (3, 10.0, [10, 1])
    assert (info["frame_sizes"], info["layers"], info["grids"]) == ({"64x48": 3}, {"2": 3}, {"layer 2: 16x16": 3})
    assert info["bytes"] == folder_ecz.stat().st_size
    assert info["payload_bytes"] == sum(len(p.payload) for p in packets) and info["packet_bytes"] == sum(bits) // 8
    assert info["bits_per_frame"] == {"mean": pytest.approx(np.mean(bits)), "min": min(bits), "max": max(bits)}
    assert info["bpp"] == pytest.approx(sum(bits) / (3 * 64 * 48))
    assert info["kbps"] == pytest.approx(np.mean(bits) * 10 / 1000)
    assert main_info([str(folder_ecz)]) == 0
    text = capsys.readouterr().out
    for line in (
        "frames      3",
        "frame rate  10 fps (10/1)",
        "frame size  64x48",
        "layers      2: 3 frames",
        f"fingerprint {codec.fingerprint.hex()}, held here",
        f"kbps        {info['kbps']:.1f} at 10 fps",
    ):
        assert line in text


# ---- errors: one line on stderr and exit status 2, through the console script's dispatcher -------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    capsys.readouterr()
    assert cli.main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edgecodec {argv[0]}: error: "), captured.err
    return lines[0]


DAMAGE = {
    "empty": lambda b: b"",
    "not an ecz": lambda b: b"\x89PNG\r\n\x1a\n" + b[8:],
    "header only": lambda b: b[:40],
    "flipped payload byte": lambda b: b[:-5] + bytes([b[-5] ^ 0x10]) + b[-4:],
    "flipped layer byte": lambda b: b[: 36 + 6] + bytes([b[36 + 6] ^ 1]) + b[36 + 7 :],
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_file_is_refused(folder_ecz: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    bad = folder_ecz.with_name("bad.ecz")
    bad.write_bytes(DAMAGE[damage](folder_ecz.read_bytes()))
    assert str(bad) in run_cli(capsys, "decode", bad, "-o", bad.with_suffix(".png"))
    assert not bad.with_suffix(".png").exists() and not list(bad.parent.glob(".*part*"))
    run_cli(capsys, "info", bad)


def test_a_file_cut_off_at_its_end_gives_its_complete_frames(
    folder_ecz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording whose writer died mid-packet: the complete frames are decoded, with one warning (not lost)."""
    whole = len(read_container(folder_ecz)[1])
    cut = folder_ecz.with_name("cut.ecz")
    cut.write_bytes(folder_ecz.read_bytes()[:-10])
    capsys.readouterr()
    assert cli.main(["decode", str(cut), "-o", str(cut.with_name("cut_%03d.png"))]) == 0
    err = capsys.readouterr().err
    assert "cut off" in err and f"its {whole - 1} complete frames" in err
    assert len(list(cut.parent.glob("cut_*.png"))) == whole - 1
    assert cli.main(["info", str(cut)]) == 0
    with pytest.raises(TruncatedError):  # the library's whole-file reader still refuses it
        read_container(cut)


@pytest.mark.parametrize(
    ("junk", "message"),
    [(b"garbage", "bytes that are not a packet after its {n} packets"),
     (None, "more data than the {n} packets its header declares")],
)  # fmt: skip
def test_a_file_followed_by_junk_gives_its_frames_with_a_warning(
    folder_ecz: Path, capsys: pytest.CaptureFixture[str], junk: bytes | None, message: str
) -> None:
    """Bytes after the last packet (or packets beyond the count the header declares): every frame is decoded, with
    one warning that says what follows; the library's whole-file reader still refuses the file."""
    data = folder_ecz.read_bytes()
    n = len(read_container(folder_ecz)[1])
    bad = folder_ecz.with_name("junk.ecz")
    bad.write_bytes(data + (junk if junk is not None else data[36:]))
    capsys.readouterr()
    assert cli.main(["decode", str(bad), "-o", str(bad.with_name("junk_%03d.png"))]) == 0
    err = capsys.readouterr().err
    assert f"ends in {message.format(n=n)}; its {n} complete frames are used" in err
    assert len(list(bad.parent.glob("junk_*.png"))) == n
    with pytest.raises(TrailingDataError):
        read_container(bad)


def test_a_single_image_from_a_cut_file_names_every_complete_frame(
    folder_ecz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """decode -o ONE.png of a cut file: the warning counts the file's complete frames, not the one image written."""
    whole = len(read_container(folder_ecz)[1])
    cut = folder_ecz.with_name("cut1.ecz")
    cut.write_bytes(folder_ecz.read_bytes()[:-10])
    capsys.readouterr()
    assert cli.main(["decode", str(cut), "-o", str(cut.with_suffix(".png"))]) == 0
    assert f"its {whole - 1} complete frames are used" in capsys.readouterr().err


def test_foreign_fingerprint(codec: Codec, folder_ecz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    header, packets = read_container(folder_ecz)
    other = folder_ecz.with_name("other.ecz")
    other.write_bytes(
        container_bytes(
            dataclasses.replace(header, fingerprint=foreign, model_name="other"),
            [dataclasses.replace(p, fingerprint=foreign) for p in packets],
        )
    )
    line = run_cli(capsys, "decode", other, "-o", other.with_suffix(".png"))
    assert "0102030405060708" in line and "does not hold" in line
    line = run_cli(capsys, "decode", other, "-o", other.with_suffix(".png"), "--model", "hqa5")
    assert "0102030405060708" in line and codec.fingerprint.hex() in line
    assert main_info([str(other)]) == 0
    assert "fingerprint 0102030405060708, NOT held" in capsys.readouterr().out
    # a file whose packets name another model than its header
    mixed = folder_ecz.with_name("mixed.ecz")
    packets = [packets[0], dataclasses.replace(packets[1], fingerprint=foreign)]
    mixed.write_bytes(
        dataclasses.replace(header, num_frames=2).to_bytes() + b"".join(map(bitstream.encode_packet, packets))
    )
    assert "unknown model fingerprint 0102030405060708" in run_cli(capsys, "info", mixed)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"layer": 6}, "layer 6; the model has layers 1..5"), ({"grid_w": 15}, "packet grid 15x16 does not match")],
)
def test_packet_the_model_cannot_decode(
    folder_ecz: Path, capsys: pytest.CaptureFixture[str], change: dict, message: str
) -> None:
    header, packets = read_container(folder_ecz)
    bad = folder_ecz.with_name("bad.ecz")
    bad.write_bytes(container_bytes(header, [packets[0], dataclasses.replace(packets[1], **change)]))
    assert message in run_cli(capsys, "decode", bad, "-o", bad.with_name("%d.png"))
    assert bad.with_name("0.png").is_file() and not bad.with_name("1.png").exists()


def test_bad_arguments(folder_ecz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "in.png"
    synthetic_image(image, 40, 30)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out.ecz"
    assert "not found" in run_cli(capsys, "encode", tmp_path / "missing.png", "-o", out, "--layer", "1")
    assert "cannot read image" in run_cli(capsys, "encode", tmp_path / "broken.png", "-o", out, "--layer", "1")
    assert "must be an .ecz file" in run_cli(capsys, "encode", image, "-o", tmp_path / "out.png", "--layer", "1")
    assert "layer 0 out of range 1..5" in run_cli(capsys, "encode", image, "-o", out, "--layer", "0")
    assert "layer 6 out of range 1..5" in run_cli(capsys, "encode", image, "-o", out, "--layer", "6")
    assert "does not exist" in run_cli(capsys, "encode", image, "-o", tmp_path / "no" / "out.ecz", "--layer", "1")
    assert "--fps must be" in run_cli(capsys, "encode", image, "-o", out, "--layer", "1", "--fps", "0")
    assert "no model named" in run_cli(capsys, "encode", image, "-o", out, "--layer", "1", "--model", "nosuch")
    assert not out.exists()
    assert "not found" in run_cli(capsys, "decode", tmp_path / "missing.ecz", "-o", tmp_path / "x.png")
    assert "decode writes images" in run_cli(capsys, "decode", folder_ecz, "-o", tmp_path / "x.txt")
    assert "frames 0..2" in run_cli(capsys, "decode", folder_ecz, "-o", tmp_path / "x.png", "--frame", "3")
    assert "single-image" in run_cli(capsys, "decode", folder_ecz, "-o", tmp_path / "x.mp4", "--frame", "1")
    assert "one %d" in run_cli(capsys, "decode", folder_ecz, "-o", tmp_path / "%s%d.png")
    assert "not an .ecz file" in run_cli(capsys, "decode", image, "-o", tmp_path / "x.png")
    assert not list(tmp_path.glob("x.*"))


def test_info_names_the_packet_format_versions(capsys: pytest.CaptureFixture[str]) -> None:
    """After a format bump, info tells old files from new ones (the golden streams of versions 1, 2 and 3)."""
    expected = Path(__file__).parent / "expected"
    for name, line in (("golden_v1.ecz", "version 1: 3 packets"), ("golden_v2.ecz", "version 2: 6 packets"),
                       ("golden.ecz", "version 3: 6 packets")):  # fmt: skip
        assert main_info([str(expected / name)]) == 0
        assert f"format      {line} (docs/bitstream.md)" in capsys.readouterr().out
    assert file_info(expected / "golden.ecz")["packet_formats"] == {"3": 6}


def test_decode_to_a_folder_says_it_is_a_folder(folder_ecz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = run_cli(capsys, "decode", folder_ecz, "-o", folder_ecz.parent)
    assert "is a directory; give a file in it" in line and "frame_%05d.png" in line
