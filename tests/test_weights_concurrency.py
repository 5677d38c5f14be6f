"""Several processes asking for the same weights for the first time at once."""

import os
import textwrap

import forked

from lpips_core.model import weights as W

SCRIPT = textwrap.dedent("""
    import sys, urllib.error
    import torchvision.models._api as api
    def offline(self, *a, **k):
        raise urllib.error.URLError("offline")
    api.WeightsEnum.get_state_dict = offline  # behave like a machine without internet
    from lpips_core.model.weights import load_backbone_state
    state = load_backbone_state("alex")
    print(float(state["0.weight"].double().sum()))
""")


def test_four_processes_first_use_end_with_one_correct_file(tmp_path):
    env = dict(os.environ, LPIPS_CORE_CACHE=str(tmp_path / "cache"))
    env.pop("LPIPS_CORE_WEIGHTS", None)
    procs = [forked.ForkedProcess(SCRIPT, env=env, log=tmp_path / f"child{k}") for k in range(4)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err
    sums = {out.strip() for out, _ in results}
    assert len(sums) == 1  # every process saw the same weights
    files = sorted(f.name for f in (tmp_path / "cache").iterdir())
    assert files == ["alexnet_features.safetensors", "alexnet_features.safetensors.lock"]
    assert W.sha256_of(tmp_path / "cache" / "alexnet_features.safetensors") == W.CONVERTED_SHA256["alexnet"]
