"""OTLP export end to end (extra ``otel``): to a collector stand-in on 127.0.0.1.

The stand-in is a small HTTP server that decodes the OTLP/HTTP protobuf requests with the
``opentelemetry-proto`` messages, as a collector would. One test wires the SDK by hand; the
other runs the README's recipe, ``opentelemetry-instrument crucible-actors run ...``, in a
subprocess configured only by ``OTEL_*`` variables.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import pytest
from tests.helpers import missing_extra

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason=missing_extra("otel"))
pytest.importorskip("opentelemetry.distro", reason=missing_extra("otel"))

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from tests.helpers import registry_with

import crucible_actors as ca
from crucible_actors import Context, Experiment, StageDef, metrics, stage

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]


class Collector:
    """What the stand-in received: decoded metric and trace export requests."""

    def __init__(self) -> None:
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.traces: list[ExportTraceServiceRequest] = []
        self.content_types: set[str] = set()
        self.lock = threading.Lock()
        self.url = ""

    def metric_points(self) -> dict[str, list[tuple[dict[str, str], Any]]]:
        """Return every data point by metric name, with its attributes."""
        found: dict[str, list[tuple[dict[str, str], Any]]] = {}
        with self.lock:
            requests = list(self.metrics)
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            attrs = {a.key: a.value.string_value for a in point.attributes}
                            found.setdefault(metric.name, []).append((attrs, point))
        return found

    def span_names(self) -> set[str]:
        with self.lock:
            return {
                span.name
                for request in self.traces
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            }


@pytest.fixture
def collector() -> Iterator[Collector]:
    received = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with received.lock:
                received.content_types.add(self.headers["Content-Type"])
                if self.path == "/v1/metrics":
                    received.metrics.append(ExportMetricsServiceRequest.FromString(body))
                    reply = ExportMetricsServiceResponse().SerializeToString()
                elif self.path == "/v1/traces":
                    received.traces.append(ExportTraceServiceRequest.FromString(body))
                    reply = ExportTraceServiceResponse().SerializeToString()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.slow
async def test_runtime_metrics_reach_an_otlp_collector(collector: Collector) -> None:
    exporter = OTLPMetricExporter(endpoint=f"{collector.url}/v1/metrics")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])

    @stage("score")
    async def score(ctx: Context, opts: Any) -> Context:
        return ctx.put_metric("accuracy", 0.9)

    reg = registry_with(score)
    with metrics.instrument(provider):
        await ca.run_async(Experiment(id="otlp", pipeline=[StageDef(name="score")]), registry=reg)
    await anyio.to_thread.run_sync(provider.shutdown)  # the final collection is exported
    assert len(collector.metrics) == 1
    points = collector.metric_points()
    assert collector.content_types == {"application/x-protobuf"}
    [(attrs, duration)] = points["crucible.stage.duration"]
    assert attrs == {"stage": "score", "outcome": "completed"}
    assert duration.count == 1
    assert list(duration.explicit_bounds) == list(metrics.DURATION_BUCKETS)
    [(attrs, attempts)] = points["crucible.stage.attempts"]
    assert (attrs, attempts.as_int) == ({"stage": "score"}, 1)
    [(_, active)] = points["crucible.runs.active"]
    assert active.as_int == 0
    [(attrs, _)] = points["crucible.run.duration"]
    assert attrs == {"status": "completed"}


@pytest.mark.slow
def test_readme_recipe_exports_metrics_and_spans_with_opentelemetry_instrument(
    collector: Collector, tmp_path: Path
) -> None:
    bindir = Path(sys.executable).parent
    instrument = shutil.which("opentelemetry-instrument", path=str(bindir))
    assert instrument is not None, "opentelemetry-instrument missing: pip install '.[otel]'"
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "OTEL_SERVICE_NAME": "crucible-actors",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
    }
    done = subprocess.run(
        [
            instrument,
            "crucible-actors",
            "run",
            str(REPO / "examples" / "core_pipeline.toml"),
            "--no-persist",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    points = collector.metric_points()
    stages = {attrs["stage"] for attrs, _ in points["crucible.stage.duration"]}
    assert stages == {"validate", "seed", "data_checks", "guardrails", "report"}
    assert {"crucible.stage.attempts", "crucible.runs.active", "crucible.run.duration"} <= set(
        points
    )
    assert {"crucible.run", "crucible.stage", "crucible.attempt"} <= collector.span_names()
