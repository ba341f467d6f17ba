"""``inference.allocator.keep_freed_memory``: glibc's thresholds set where they can be, left
alone where the user chose otherwise; the command line sets them when it starts."""

import platform
import subprocess
import sys

import pytest

from pyro_hypervae.inference import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _clean(monkeypatch):
    for k in (allocator.OPT_OUT, "GLIBC_TUNABLES", "LD_PRELOAD", *allocator._GLIBC_VARIABLES):
        monkeypatch.delenv(k, raising=False)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_keeps_freed_memory_on_glibc(monkeypatch):
    _clean(monkeypatch)
    assert allocator.why_not_kept() == ""
    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True  # again: the same settings


@pytest.mark.parametrize("var, value, reason", [
    ("PYRO_HYPERVAE_MALLOC", "default", "asks for glibc's defaults"),
    ("MALLOC_TRIM_THRESHOLD_", "1000000", "glibc's own settings are given (MALLOC_TRIM_THRESHOLD_)"),
    ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1000000", "glibc's own settings are given (GLIBC_TUNABLES)"),
    ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "another allocator is preloaded"),
])
def test_leaves_the_allocator_alone_where_the_user_chose(monkeypatch, var, value, reason):
    _clean(monkeypatch)
    monkeypatch.setenv(var, value)
    assert reason in allocator.why_not_kept()
    assert allocator.keep_freed_memory() is False


def test_not_glibc_is_left_alone(monkeypatch):
    _clean(monkeypatch)
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert allocator.why_not_kept() == "the C library is not glibc"
    assert allocator.keep_freed_memory() is False


def test_the_command_line_keeps_freed_memory_when_it_starts(monkeypatch):
    import importlib

    cli = importlib.import_module("pyro_hypervae.cli.main")

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])  # argparse's --help exits before the command runs
    assert calls == []
    assert cli.main(["shards", "info", "/nonexistent/shards"]) == 2  # a command that runs (and refuses its input)
    assert calls == [1]


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_the_benchmark_runs_both_settings_in_fresh_processes(tmp_path):
    out = tmp_path / "allocator.md"
    subprocess.run([sys.executable, "benchmarks/allocator.py", "--quick", "--what", "conv", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    text = out.read_text()
    assert "glibc defaults" in text and "kept / defaults" in text and "the paper's conv" in text
