"""flinkcore's runtime settings on the environment's Configuration reach the job graph."""

from __future__ import annotations

from flinkcore.common.configuration import Configuration
from flinkcore.datastream import StreamExecutionEnvironment


def _graph_config(settings: dict[str, str]) -> dict:
    conf = Configuration()
    for key, value in settings.items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.from_collection([1, 2, 3]).print()
    return env.get_stream_graph("config").config


def test_two_phase_aggregation_settings_travel_as_they_are():
    settings = {
        "execution.window.two-phase-aggregation": "false",
        "execution.window.two-phase-aggregation.sessions": "true",
        "execution.window.two-phase-aggregation.sessions.adaptive.min-records": "5000",
        "execution.window.two-phase-aggregation.sessions.adaptive.max-messages-per-record": "0.25",
    }
    config = _graph_config({**settings, "pipeline.name": "not a runtime setting"})
    assert {k: v for k, v in config.items() if k.startswith("execution.")} == settings


def test_sinks_run_in_the_driver_unless_configured():
    assert _graph_config({})["cluster_sinks_in_driver"] is True
    assert _graph_config({"flinkcore.sinks-in-driver": "false"})["cluster_sinks_in_driver"] is False
