"""Files from elsewhere never run code when they are loaded: checkpoints, .npz inputs
and config files, each with a payload that would write a file if it were executed."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_hypervae.cli import main


class Payload:
    """Unpickling this calls Path.write_text(target, "pwned"): the proof that code ran."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


@pytest.fixture
def run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "2", "--z-dim", "2", "--u-dim", "2", "--no-progress"]) == 0
    return out


def test_the_payload_does_run_when_unpickled(tmp_path):
    """The payload works: plain pickle executes it (what the loaders below must never do)."""
    target = tmp_path / "proof.txt"
    pickle.loads(pickle.dumps(Payload(target)))
    assert target.read_text() == "pwned"


def test_a_hostile_checkpoint_is_refused_without_running(run, tmp_path, capsys):
    target = tmp_path / "pwned_ckpt.txt"
    ckpt = run / "checkpoint.pt"
    for name in ("checkpoint.pt.sha256", "checkpoint.pt.prev", "checkpoint.pt.prev.sha256"):
        (run / name).unlink(missing_ok=True)
    torch.save({"model": Payload(target), "step": 2}, ckpt)
    for argv in (["evaluate", "--run", str(run)], ["sample", "--run", str(run), "--task", "1"],
                 ["train", "--out", str(run), "--resume", "--steps", "4", "--no-progress"]):
        assert main(argv) == 2
        assert "corrupt or not a pyro-hypervae checkpoint" in capsys.readouterr().err
    assert not target.exists()


def test_a_hostile_hypergan_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "hg"
    assert main(["hypergan", "train", "--dataset", "digits", "--out", str(out), "--steps", "2", "--no-progress"]) == 0
    target = tmp_path / "pwned_hg.txt"
    for p in out.glob("checkpoint.pt.*"):
        p.unlink()
    torch.save({"state": Payload(target)}, out / "checkpoint.pt")
    assert main(["hypergan", "evaluate", "--run", str(out), "--members", "1"]) == 2
    assert "corrupt or not a pyro-hypervae checkpoint" in capsys.readouterr().err
    assert not target.exists()


def test_an_npz_with_object_arrays_is_refused_without_running(run, tmp_path, capsys):
    target = tmp_path / "pwned_npz.txt"
    hostile = tmp_path / "hostile.npz"
    np.savez(hostile, x=np.array([Payload(target)] * 4, dtype=object), task=np.arange(4))
    assert main(["train", "--dataset", str(hostile), "--out", str(tmp_path / "r"), "--steps", "2", "--no-progress"]) == 2
    assert "not a readable .npz" in capsys.readouterr().err
    assert main(["score", "--run", str(run), "--data", str(hostile), "--out", str(tmp_path / "s.json")]) == 2
    assert "not a readable .npz" in capsys.readouterr().err
    assert main(["hypergan", "train", "--dataset", str(hostile), "--out", str(tmp_path / "hg"), "--steps", "2", "--no-progress"]) == 2
    assert not target.exists()


def test_config_files_are_data_not_code(tmp_path, capsys):
    """JSON and TOML hold values only; a config that names a Python object is an unknown key or a bad value."""
    target = tmp_path / "pwned_cfg.txt"
    for name, text in (("c.json", json.dumps({"__reduce__": f"Path.write_text({str(target)!r}, 'x')"})),
                       ("c.toml", f'model = "__import__(\'os\').system(\'touch {target}\')"\n')):
        cfg = tmp_path / name
        cfg.write_text(text)
        assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--steps", "2", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "unknown config key" in err or "invalid config value" in err
    assert not target.exists()
