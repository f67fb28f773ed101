"""Study specs: YAML and TOML load to the same spec; every unknown field or step is an error that names it."""
import re

import pytest

from workbench.cluster.spec import SpecError, load_spec, parse_spec

YAML = """
study: demo-study
task: text-classification
variants:
  baseline: []
  int8:
    - quantize_dynamic: {per_channel: true}
points: {batch_sizes: [1, 4], seq_len: 32}
measure: {eval_limit: 16, time_budget_s: 0.5, threads: 1}
slo: {ms: 50, percentile: p90}
targets:
  - {name: small, instance: c7i.large, resources: {"instance:c7i.large": 1}}
"""

TOML = """
study = "demo-study"
task = "text-classification"
[variants]
baseline = []
int8 = [{quantize_dynamic = {per_channel = true}}]
[points]
batch_sizes = [1, 4]
seq_len = 32
[measure]
eval_limit = 16
time_budget_s = 0.5
threads = 1
[slo]
ms = 50
percentile = "p90"
[[targets]]
name = "small"
instance = "c7i.large"
resources = {"instance:c7i.large" = 1}
"""


def test_yaml_and_toml_give_the_same_spec(tmp_path):
    (tmp_path / "s.yaml").write_text(YAML)
    (tmp_path / "s.toml").write_text(TOML)
    a, b = load_spec(tmp_path / "s.yaml"), load_spec(tmp_path / "s.toml")
    assert a == b
    assert a.batch_sizes == (1, 4) and a.seq_len == 32 and a.percentile == "p90" and a.slo_ms == 50
    name, recipe = a.variants[1]
    assert name == "int8" and recipe[0][0] == "quantize_dynamic" and recipe[0][1]["per_channel"] is True
    assert recipe[0][1]["type"] == "QuantizeDynamicConfig"      # the registry's config dict, defaults filled in
    assert a.targets[0].resources == (("instance:c7i.large", 1.0),)


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown field 'colour' in the spec"),
    ({"points": {"batch_size": [1]}}, "unknown field 'batch_size' in points"),
    ({"variants": {"x": [{"quantise": {}}]}}, "unknown step 'quantise'"),
    ({"variants": {"x": [{"quantize_dynamic": {"bits": 4}}]}}, "unknown field 'bits' in step 'quantize_dynamic'"),
    ({"variants": {"x": [{"optimize": {"level": "O9"}}]}}, "variant 'x', step 'optimize': optimisation level 'O9'"),
    ({"slo": {"ms": 5, "percentile": "p42"}}, "slo.percentile 'p42' unknown"),
    ({"targets": [{"name": "t"}]}, "targets[0] needs a name and a price-table instance"),
    ({"targets": [{"name": "t", "instance": "x", "gpu": 1}]}, "unknown field 'gpu' in targets[0]"),
    ({"targets": [{"name": "t", "instance": "x", "device": "cuda"}]}, "device cuda needs gpus >= 1"),
])
def test_bad_specs_name_the_field(change, message):
    import yaml

    data = {**yaml.safe_load(YAML), **change}
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(data)


def test_missing_spec_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
