"""health-drop: a trailhead processor written in Python (built with componentize-py).

Drops the spans of health and readiness probes, which are most of the traffic of a quiet
service and none of its story. A span goes when its `http.route` or `url.path` attribute is
one of the configured paths. Config: {"paths": ["/healthz", "/readyz"]} (those by default).

It reads two attribute columns and drops by index: three host calls per batch, whatever its
size.
"""

import json

from wit_world import WitWorld as Processor
from wit_world.imports import batch, host, types

PATHS: frozenset = frozenset()


class WitWorld(Processor):
    def init(self, config: str) -> types.PluginInfo:
        global PATHS
        settings = json.loads(config or "{}")
        unknown = set(settings) - {"paths"}
        if unknown:
            raise_err(f"{sorted(unknown)[0]}: unknown key; expected paths")
        paths = settings.get("paths", ["/healthz", "/readyz"])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise_err("paths: expected a list of strings")
        PATHS = frozenset(paths)
        return types.PluginInfo(name="health-drop-py", version="0.1.0", signals=[types.Signal.TRACES])

    def process_spans(self, spans: batch.SpanBatch) -> None:
        routes = spans.span_attr_column("http.route")
        url_paths = spans.span_attr_column("url.path")
        probes = [i for i, (route, path) in enumerate(zip(routes, url_paths))
                  if text(route) in PATHS or text(path) in PATHS]
        if probes:
            spans.drop_spans(probes)
            host.log(host.Level.DEBUG, f"dropped {len(probes)} probe spans")

    def process_logs(self, logs: batch.LogBatch) -> None:
        pass

    def process_metrics(self, metrics: batch.MetricBatch) -> None:
        pass


def text(value):
    return value.value if isinstance(value, types.AnyValue_Str) else None


def raise_err(message):
    from componentize_py_types import Err
    raise Err(message)
