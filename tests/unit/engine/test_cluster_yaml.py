"""cluster.yaml: valid for Ray's cluster launcher, dashboard on loopback, token auth on every node."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[3] / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _validated(cfg: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


def test_ray_validator_accepts_it(config):
    prepared = _validated(config)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_the_validator_is_not_a_rubber_stamp(config):
    bad = copy.deepcopy(config)
    bad["head_node_type"] = "no-such-type"
    with pytest.raises(ValueError):
        _validated(bad)
    typo = copy.deepcopy(config)
    typo["setup_comands"] = []
    with pytest.raises(Exception):  # jsonschema's ValidationError: unknown top-level key
        _validated(typo)


def test_head_is_cpu_and_workers_have_gpus(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert workers
    for name, node in workers.items():
        assert node["resources"]["GPU"] >= 1, name
        assert node.get("min_workers", 0) == 0, f"{name}: idle GPU nodes cost money; start at 0"
        assert re.match(r"^(g5|g6|p4d|p4de|p5|p5e)\.", node["node_config"]["InstanceType"]), name


def test_dashboard_binds_to_loopback_only(config):
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "0.0.0.0" not in CLUSTER_YAML.read_text()


def test_token_authentication_on_every_node(config):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts, key
        assert all("RAY_AUTH_MODE=token" in c for c in starts), key
    # The token itself reaches every node (the same file the local CLI writes and reads).
    assert config["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    assert "RAY_AUTH_MODE=disabled" not in CLUSTER_YAML.read_text()


def test_project_is_installed_on_every_node(config):
    assert config["file_mounts"].get("~/harness") == "."
    assert any("-e ~/harness" in c for c in config["setup_commands"])
    assert {".venv", "results", ".git"} <= set(config["rsync_exclude"])
    ray_pins = [c for c in config["setup_commands"] if "ray[default]==" in c]
    assert ray_pins, "pin Ray on the cluster to the client's version"
    import ray

    pinned = re.search(r"ray\[default\]==([\w.]+)", ray_pins[0]).group(1)
    assert pinned == ray.__version__, "the cluster's Ray must match the Ray that submits to it"
