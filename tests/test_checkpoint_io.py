"""Checkpoints: a write that dies halfway or races another writer never leaves a torn file or a
temp file; a load never runs code from the file and names a damaged file with the fix."""

from __future__ import annotations

import time

import pytest
import torch

from lengen import checkpoint_io
from lengen.checkpoint_io import AtomicCheckpointIO
from lengen.errors import ConfigError


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    assert io.load_checkpoint(path)["step"] == 1

    def dies_halfway(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"\x80partial")
        raise KeyboardInterrupt  # a signal in the middle of the write

    monkeypatch.setattr(checkpoint_io.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no stray temp file

    io.save_checkpoint({"step": 3}, path)
    assert io.load_checkpoint(path)["step"] == 3


# -- concurrent writers, hostile and damaged files ---------------------------------------------------

N_SAVES = 40
N_VALUES = 1 << 19  # 2 MB of float32 per checkpoint


def _checkpoint(writer: int, it: int) -> dict:
    """A checkpoint whose every part says who wrote it and when (a torn file cannot agree with itself)."""
    stamp = writer * 1000 + it
    return {"writer": writer, "iter": it, "weights": torch.full((N_VALUES,), float(stamp)), "tail": [stamp] * 8}


def _consistent(ck: dict) -> bool:
    stamp = ck["writer"] * 1000 + ck["iter"]
    w = ck["weights"]
    return w.shape == (N_VALUES,) and bool((w == stamp).all()) and ck["tail"] == [stamp] * 8


def _writer(path: str, writer: int, start, errors) -> None:
    try:
        start.wait(timeout=120)  # torch imported in both writers and the reader: go
        io = AtomicCheckpointIO()
        for it in range(N_SAVES):
            io.save_checkpoint(_checkpoint(writer, it), path)
    except BaseException as e:
        errors.put(f"writer {writer}: {e!r}")
        raise


def test_two_processes_saving_one_path_never_tear_it(tmp_path):
    import multiprocessing as mp

    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(0, 0), path)
    # forkserver: torch is imported once (in the server, which never ran a parallel op, so forking
    # it is safe), not once per writer as with spawn.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["lengen.checkpoint_io", __name__])
    start, errors = ctx.Barrier(3), ctx.Queue()
    writers = [ctx.Process(target=_writer, args=(str(path), w, start, errors)) for w in (1, 2)]
    for p in writers:
        p.start()
    start.wait(timeout=120)
    seen, reads = set(), 0
    while any(p.is_alive() for p in writers) or reads == 0:
        ck = checkpoint_io.load_checkpoint(path)  # a torn file would raise ConfigError here
        assert _consistent(ck), (ck["writer"], ck["iter"])
        seen.add((ck["writer"], ck["iter"]))
        reads += 1
        time.sleep(0.002)  # leave the writers some of a small machine's CPU
    for p in writers:
        p.join(timeout=60)
    assert errors.empty(), errors.get()
    assert [p.exitcode for p in writers] == [0, 0]
    last = checkpoint_io.load_checkpoint(path)
    assert _consistent(last) and (last["writer"], last["iter"]) in {(1, N_SAVES - 1), (2, N_SAVES - 1)}
    assert len(seen) > 1  # the reader really overlapped the writers
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temp files left


class _RunsCodeWhenUnpickled:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a hostile pickle runs."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_refuses_a_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    torch.save({"state_dict": {"w": torch.ones(2)}, "callbacks": _RunsCodeWhenUnpickled(str(marker))}, path)
    with pytest.raises(ConfigError) as e:
        checkpoint_io.load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError):
        AtomicCheckpointIO().load_checkpoint(path)  # the path Lightning's resume takes
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live: an unsafe load does run it
    assert marker.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "cut-to-header"])
def test_load_damaged_checkpoint_says_move_it_aside(tmp_path, damage):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(_checkpoint(1, 1), path)
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "cut-to-header": data[:64]}[damage])
    with pytest.raises(ConfigError) as e:
        checkpoint_io.load_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "move it aside" in msg and "\n" not in msg


def test_load_text_file_as_checkpoint_is_a_config_error(tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_text("hello")
    with pytest.raises(ConfigError, match="move it aside"):
        checkpoint_io.load_checkpoint(path)


def test_refusal_names_the_refused_global_without_terminal_escapes(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"x": _RunsCodeWhenUnpickled(str(tmp_path / "pwned"))}, path)
    with pytest.raises(ConfigError) as e:
        checkpoint_io.load_checkpoint(path)
    # builtins.open is io.open: torch names the global by its defining module
    assert "unsupported global io.open" in str(e.value) and "\x1b" not in str(e.value)
