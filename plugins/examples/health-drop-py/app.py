"""health-drop: a trailhead processor written in Python (built with componentize-py).

Drops the spans of health and readiness probes, which are most of the traffic of a quiet
service and none of its story. A span goes when its `http.route` or `url.path` attribute is
one of the configured paths. Config: {"paths": ["/healthz", "/readyz"]} (those by default).

It reads two attribute columns and removes by index: three host calls per batch, whatever
its size, plus a log line when it dropped something. Contract 0.2.0; `trailhead_sdk`
(plugins/sdk-py) unpacks the columns and checks the config.
"""

from componentize_py_types import Err
from wit_world import WitWorld as Processor
from wit_world.imports import batch, log, types

from trailhead_sdk import Config, ConfigError, values

PATHS: frozenset = frozenset()


class WitWorld(Processor):
    def init(self, config: str) -> types.PluginInfo:
        global PATHS
        try:
            settings = Config(config, known=("paths",))
            PATHS = frozenset(settings.strings("paths", default=["/healthz", "/readyz"]))
        except ConfigError as e:
            raise Err(str(e))
        return types.PluginInfo(name="health-drop-py", version="0.2.0", signals=[types.Signal.TRACES])

    def process_spans(self, spans: batch.SpanBatch) -> None:
        routes = values(spans.attr_column(types.Level.ITEM, "http.route"))
        url_paths = values(spans.attr_column(types.Level.ITEM, "url.path"))
        # A non-string value (an int route, say) is never a probe path; `in` on a frozenset of
        # str is simply False for it, and None (absent) likewise.
        probes = [i for i, (route, path) in enumerate(zip(routes, url_paths))
                  if route in PATHS or path in PATHS]
        if probes:
            spans.remove(types.Level.ITEM, probes)
            log.write(log.Severity.DEBUG, f"dropped {len(probes)} probe spans")

    # Only traces are asked for in `init`, so the host never calls these.
    def process_logs(self, logs: batch.LogBatch) -> None:
        pass

    def process_metrics(self, metrics: batch.MetricBatch) -> None:
        pass
