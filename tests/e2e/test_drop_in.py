"""The drop-in corpus (issue 21): published collector configs, saved verbatim with their source,
through `trailhead validate` and then a run on loopback (tests/drop_in/run.py does the work).

The rate is recorded, not asserted: it is low while the components and keys that configs use are
being added. What is asserted holds at any rate: the corpus is what it claims to be, a config
that validates also runs, and a refusal says what refused and where.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import BINARY, REPO

DROP_IN = REPO / "tests" / "drop_in"
CONFIGS = sorted((DROP_IN / "configs").glob("*.yaml"))
SOURCE = re.compile(r"^# source: https://github\.com/[\w.-]+/[\w.-]+/blob/[0-9a-f]{40}/\S+$", re.M)
KIND = re.compile(r"^# kind: (gateway|agent|demo)$", re.M)


def runner():
    spec = importlib.util.spec_from_file_location("drop_in_run", DROP_IN / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The runner over the whole corpus, once for the module."""
    out = tmp_path_factory.mktemp("drop-in") / "results.json"
    done = subprocess.run([sys.executable, str(DROP_IN / "run.py"), "--json", str(out)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TRAILHEAD_BIN": str(BINARY)})
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)
    return json.loads(out.read_text())


# The corpus is at least 30 whole configs, each with the commit-pinned source it was copied from
# and its kind; each is a config a collector loads, not a fragment.
def test_corpus_is_sourced_whole_configs():
    assert len(CONFIGS) >= 30
    for path in CONFIGS:
        text = path.read_text()
        assert SOURCE.search(text), f"{path.name}: no `# source: https://github.com/OWNER/REPO/blob/COMMIT/PATH`"
        assert KIND.search(text), f"{path.name}: no `# kind: gateway|agent|demo`"
        config = yaml.safe_load(text)
        assert config.get("receivers") and config.get("exporters"), path.name
        assert (config.get("service") or {}).get("pipelines"), f"{path.name}: no service.pipelines"


# The run's copy differs from the published config only in listening addresses and exporter
# endpoints: the "unchanged" in the rate rests on this.
def test_run_copy_changes_only_listeners_and_endpoints():
    run = runner()
    allowed = {"endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint", "url", "hostnames", "hostname",
               "port", "host", "address"}
    sinks = run.Sinks()
    try:
        for path in CONFIGS:
            original = flatten(yaml.load(path.read_text(), Loader=run.Loader))
            copy = flatten(run.rewrite(yaml.load(path.read_text(), Loader=run.Loader), sinks)[0])
            for key in set(original) | set(copy):
                if original.get(key, "absent") == copy.get(key, "absent"):
                    continue
                filled = key in original and original[key] in (None, {}) and any(k.startswith(key + ".") for k in copy)
                assert filled or key.rsplit(".", 1)[-1].split("[")[0] in allowed, f"{path.name}: {key} changed"
    finally:
        sinks.stop()


def flatten(node, prefix=""):
    """{dotted.path: leaf} of a parsed config; lists as path[i]."""
    if isinstance(node, dict) and node:
        children = [(f"{prefix}.{key}" if prefix else str(key), value) for key, value in node.items()]
    elif isinstance(node, list) and node:
        children = [(f"{prefix}[{i}]", value) for i, value in enumerate(node)]
    else:
        return {prefix: node}
    return {k: v for path, value in children for k, v in flatten(value, path).items()}


# Every config trailhead validates also starts, takes one OTLP request per signal its pipelines
# accept, and stays up: validate says yes only to what runs.
def test_every_config_that_validates_runs(results, record_property):
    summary = results["summary"]
    record_property("drop_in_validate", f"{summary['validate']}/{summary['configs']}")
    record_property("drop_in_run", f"{summary['run']}/{summary['configs']}")
    failed = [f"{r['config']}: {r['refusal']}" for r in results["results"] if r["validates"] and not r["runs"]]
    assert not failed, "\n".join(failed)
    sent = [s for r in results["results"] if r["runs"] for s, v in r["signals"].items() if v == "ok"]
    assert summary["run"] == 0 or sent, "configs ran but no request was accepted"


# A refusal names the component or key that refused, with its line and column: never a panic or
# a bare "error".
def test_refusals_name_component_and_place(results):
    for r in results["results"]:
        if r["validates"]:
            continue
        assert "panick" not in r["refusal"], f"{r['config']}: {r['refusal']}"
        assert re.match(r"\d+:\d+: ", r["refusal"]), f"{r['config']}: no line:column in {r['refusal']!r}"
        assert r["component"], f"{r['config']}: the refusal names no component or key: {r['refusal']!r}"


# The runner's run step can say no: a config that validates but refuses the request it gets (a
# 1-byte body limit) is reported as not running, with the signal and trailhead's reason.
def test_runner_reports_a_refused_request(tmp_path):
    run = runner()
    config = tmp_path / "configs" / "limit.yaml"
    config.parent.mkdir()
    config.write_text("# source: none\n# kind: gateway\n" + yaml.safe_dump({
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "0.0.0.0:4318", "max_request_body_size": 1}}}},
        "exporters": {"debug": None},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["debug"]}}}}))
    workdir = tmp_path / "work"
    workdir.mkdir()
    sinks = run.Sinks()
    try:
        result = run.check(config, sinks, workdir)
    finally:
        sinks.stop()
    assert result.validates, result.refusal
    assert result.runs is False
    assert result.component == "run: traces"
    assert "HTTP 413" in result.refusal and "larger than the limit" in result.refusal, result.refusal
