"""The YAML reader for lockfiles: same documents as PyYAML, bounded cost on hostile input."""

import pathlib
import time

import pytest
import yaml

from analyzerd.catalogers.safeyaml import MAX_DEPTH, YamlError, flow_depth_bound, load_mapping

NPM_DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "npm"


@pytest.mark.parametrize("relative", ["yarn-berry/yarn.lock", "pnpm-v5/pnpm-lock.yaml", "pnpm-v6/pnpm-lock.yaml",
                                      "pnpm-v9/pnpm-lock.yaml"])
def test_real_lockfiles_read_as_pyyaml_reads_them(relative):
    text = (NPM_DATA / relative).read_text()
    assert load_mapping(text) == yaml.load(text, Loader=yaml.BaseLoader)


def test_scalars_stay_strings_and_aliases_are_shared():
    doc = load_mapping("version: 1.10\ndev: true\nn: ~\nbase: &b {a: [1, 2]}\ncopy: *b\n---\nsecond: 1\n")
    assert doc == {"version": "1.10", "dev": "true", "n": "~", "base": {"a": ["1", "2"]}, "copy": {"a": ["1", "2"]}}
    assert doc["copy"] is doc["base"]


@pytest.mark.parametrize("text", ["[1, 2]", "just text", "", "? [a, b]\n: c\n", "a: *nowhere\n", "a: [unclosed\n",
                                  "[" * 100_000, "{a: " * 100_000, "- " * 100_000 + "x",
                                  "".join(" " * i + "a:\n" for i in range(3000))])
def test_bad_or_hostile_documents_raise_yaml_error_quickly(text):
    start = time.monotonic()
    with pytest.raises(YamlError):
        load_mapping(text)
    assert time.monotonic() - start < 2


def test_alias_bomb_costs_its_text():
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n"
    for prev, name in zip("abcdefgh", "bcdefghi"):
        bomb += f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]\n"
    start = time.monotonic()
    assert len(load_mapping(bomb)["i"]) == 9
    assert time.monotonic() - start < 1


def test_flow_depth_bound():
    assert flow_depth_bound("a: {b: [c, {d: e}]}, f: [g]") == 3
    assert flow_depth_bound("no brackets") == 0
    assert flow_depth_bound("[[[") == 3  # unclosed openers count
    assert flow_depth_bound("[" * 10_000 + "]" * 10_000) > MAX_DEPTH
    nested = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # the mapping is one level more
    innermost = load_mapping(nested)["a"]
    for _ in range(MAX_DEPTH - 2):
        (innermost,) = innermost
    assert innermost == []
    with pytest.raises(YamlError, match="nested too deeply"):
        load_mapping("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)
