#!/usr/bin/env python3
"""Rule 1 of README.md ("every gateway config published on opentelemetry.io"), applied by a
program so that anyone can check which configs it yields and why the others are out.

It reads a clone of open-telemetry/opentelemetry.io at the pinned commit, never trailhead: what
trailhead takes plays no part in the choice.

Usage: pick_otelio.py CLONE [--write]
Without --write it prints every candidate with its verdict; with it, it saves the new gateway
configs as the next NN-otelio-<page>-<block>.yaml in configs/ (duplicates, as parsed YAML, of a
config already there are skipped).
"""

import argparse
import json
import re
import subprocess
import textwrap
from pathlib import Path

import yaml

COMMIT = "dd5997c8b9fafbf72ea6b8059ade242d88b8f118"
CONFIGS = Path(__file__).resolve().parent / "configs"
# Receivers that read the host, node, cluster API, files or runtime the collector runs on.
LOCAL = {"hostmetrics", "host_metrics", "filelog", "otlpjsonfile", "journald", "kubeletstats", "k8s_cluster",
         "k8s_events", "k8sobjects", "docker_stats", "podman_stats", "windowsperfcounters", "windowseventlog",
         "telemetryapi", "awsecscontainermetrics", "obi"}
# Exporters that only print or write locally: a config with no other one sends nothing onward.
PRINT_ONLY = {"debug", "logging", "file", "nop"}
FENCE = re.compile(r"^([ \t]*)(```|~~~)[ \t]*ya?ml\b[^\n]*\n(.*?)^\1\2[ \t]*$", re.M | re.S)


def is_config(doc):
    """A whole collector config: receivers and exporters maps and a service.pipelines map."""
    if not isinstance(doc, dict) or not isinstance(doc.get("service"), dict):
        return False
    return all(isinstance(x, dict) for x in (doc.get("receivers"), doc.get("exporters"),
                                             doc["service"].get("pipelines")))


def child(node, key):
    """The value node under `key` in a mapping node, or None."""
    if isinstance(node, yaml.MappingNode):
        return next((value for name, value in node.value if name.value == key), None)
    return None


def source_text(block, node):
    """A node's text as written: a string's value, or a mapping's lines dedented."""
    if isinstance(node, yaml.ScalarNode):
        return node.value
    lines = block.splitlines(keepends=True)
    end = node.end_mark.line + (node.end_mark.column > 0)
    return textwrap.dedent("".join(lines[node.start_mark.line:end]))


def daemonset_config_maps(docs):
    """Names of the ConfigMaps a DaemonSet in the same block mounts: an agent's configs."""
    names = set()
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "DaemonSet":
            volumes = ((doc.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []
            names |= {v["configMap"].get("name") for v in volumes if isinstance(v, dict) and v.get("configMap")}
    return names


def parse_or_none(text):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:  # a config with placeholders that are not YAML is no whole config
        return None


def candidates(block):
    """(extract wording, verbatim text, parsed config, agent mode or None) per config in a block."""
    try:
        docs, nodes = list(yaml.safe_load_all(block)), list(yaml.compose_all(block))
    except yaml.YAMLError:
        return []
    agent_maps = daemonset_config_maps(docs)
    found = []
    for doc, node in zip(docs, nodes):
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if is_config(doc):
            found.append(("", block, doc, None))
        elif kind == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                inner = parse_or_none(value)
                if is_config(inner):
                    agent = "DaemonSet" if (doc.get("metadata") or {}).get("name") in agent_maps else None
                    found.append((f"data.{key} of the ConfigMap in ", value, inner, agent))
        elif kind == "OpenTelemetryCollector":
            config = child(child(node, "spec"), "config")
            text = source_text(block, config) if config is not None else ""
            inner = parse_or_none(text)
            if is_config(inner):
                mode = (doc.get("spec") or {}).get("mode") or "deployment"
                found.append(("spec.config of the OpenTelemetryCollector in ", text, inner,
                              mode if mode in ("daemonset", "sidecar") else None))
    return found


def verdict(page, config, agent):
    """"gateway", or why the rule leaves the config out."""
    if page.startswith("content/en/docs/collector/extend/"):
        return "out: a component being written (docs/collector/extend/)"
    if page == "content/en/docs/collector/deploy/agent.md":
        return "out: shown as an agent (deploy/agent.md)"
    if agent:
        return f"out: shown as an agent ({agent})"
    receivers = {str(r).split("/")[0] for r in config["receivers"]}
    if receivers & LOCAL:
        return f"out: local receiver {', '.join(sorted(receivers & LOCAL))}"
    if not receivers:
        return "out: no receiver"
    exporters = {str(e).split("/")[0] for e in config["exporters"]}
    if not exporters - PRINT_ONLY:
        return f"out: only prints ({', '.join(sorted(exporters))})"
    return "gateway"


def rows(clone):
    """Every candidate on every English page, in path then block order, with its verdict."""
    git = lambda *args: subprocess.run(["git", "-C", clone, *args], capture_output=True, text=True,
                                       check=True).stdout
    pages = sorted(p for p in git("ls-tree", "-r", "--name-only", COMMIT, "content/en").split() if p.endswith(".md"))
    for page in pages:
        for number, match in enumerate(FENCE.finditer(git("show", f"{COMMIT}:{page}"))):
            for what, text, config, agent in candidates(textwrap.dedent(match[3])):
                yield page, number, what, text, config, verdict(page, config, agent)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("clone")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    key = lambda config: json.dumps(config, sort_keys=True, default=str)
    seen = {key(yaml.safe_load(p.read_text())): p.name for p in sorted(CONFIGS.glob("*.yaml"))}
    number = max(int(p.name[:2]) for p in CONFIGS.glob("*.yaml")) + 1
    for page, block, what, text, config, outcome in rows(args.clone):
        where = f"{page} block {block}"
        if outcome != "gateway" or key(config) in seen:
            print(f"{where}: {outcome if outcome != 'gateway' else 'in the corpus as ' + seen[key(config)]}")
            continue
        path = Path(page)
        name = f"{number:02d}-otelio-{path.parent.name if path.stem in ('index', '_index') else path.stem}-{block}.yaml"
        seen[key(config)], number = name, number + 1
        extract = (f"{what}yaml code block number {block} of the page" if what
                   else f"the yaml code block number {block} of the page (as shown, dedented)")
        print(f"{where}: gateway -> {name}")
        if args.write and not (CONFIGS / name).exists():
            (CONFIGS / name).write_text(
                f"# source: https://github.com/open-telemetry/opentelemetry.io/blob/{COMMIT}/{page}\n"
                f"# kind: gateway\n# extract: {extract}\n" + text + ("" if text.endswith("\n") else "\n"))


if __name__ == "__main__":
    main()
