import pickle

import pytest

from flinkcore.common import (
    Configuration,
    Duration,
    Encoder,
    RestartStrategies,
    Row,
    RowKind,
    Time,
    Types,
    Watermark,
    WatermarkStrategy,
)
from flinkcore.common.watermark_strategy import BoundedOutOfOrdernessWatermarks, WatermarksWithIdleness
from flinkcore.datastream import StreamExecutionEnvironment


def test_row_positional_and_named():
    r = Row(name="alice", age=3)
    assert r.name == "alice" and r["age"] == 3 and r[0] == "alice"
    assert r.as_dict() == {"name": "alice", "age": 3}
    assert r == Row(name="alice", age=3) and r != Row(name="bob", age=3)
    assert hash(r) == hash(Row("alice", 3))
    assert repr(r) == "Row(name='alice', age=3)" and repr(Row(1, "a")) == "Row(1, 'a')"
    assert isinstance(r, tuple) and tuple(r) == ("alice", 3)
    with pytest.raises(AttributeError):
        r.missing  # noqa: B018
    with pytest.raises(ValueError):
        Row(1, a=2)
    person = Row("id", "name")
    assert person(1, "x").name == "x"
    back = pickle.loads(pickle.dumps(r))
    assert back == r and back.name == "alice"


def test_row_kind():
    r = Row(1)
    assert r.get_row_kind() == RowKind.INSERT
    r.set_row_kind(RowKind.DELETE)
    assert r.get_row_kind().short_string() == "-D" and r != Row(1)


def test_types():
    t = Types.ROW_NAMED(["a", "b"], [Types.LONG(), Types.STRING()])
    assert t.get_field_names() == ["a", "b"] and t.get_field_types() == [Types.LONG(), Types.STRING()]
    assert Types.ROW([Types.INT()]).get_field_names() == ["f0"]
    assert Types.TUPLE([Types.LONG(), Types.DOUBLE()]) == Types.TUPLE([Types.LONG(), Types.DOUBLE()])
    assert Types.LIST(Types.INT()) != Types.LIST(Types.LONG())
    assert repr(Types.MAP(Types.STRING(), Types.LONG())) == "MAP<STRING, LONG>"
    for name in ("BOOLEAN", "BYTE", "SHORT", "FLOAT", "BIG_DEC", "SQL_TIMESTAMP", "PICKLED_BYTE_ARRAY"):
        assert getattr(Types, name)() is not None
    assert Types.BASIC_ARRAY(Types.STRING()) and Types.PRIMITIVE_ARRAY(Types.INT())


def test_durations_and_times():
    assert Duration.of_seconds(2).to_milliseconds() == 2000
    assert Duration.of_minutes(1) == Duration.of_millis(60_000)
    assert Duration.of_hours(1).millis == 3_600_000 and Duration.of_days(1).millis == 86_400_000
    assert Time.minutes(2).to_milliseconds() == 120_000 and Time.milliseconds(5).millis == 5
    assert Time.hours(1).millis == 3_600_000 and Time.days(1).millis == 86_400_000


def test_configuration_drives_the_environment():
    conf = Configuration()
    conf.set_string("parallelism.default", "3")
    conf.set_string("pipeline.auto-watermark-interval", "50 ms")
    conf.set_string("execution.runtime-mode", "batch")
    conf.set_integer("x.int", 7)
    conf.set_boolean("x.bool", True)
    assert conf.get_integer("x.int") == 7 and conf.get_boolean("x.bool") and conf.contains_key("x.int")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    assert env.get_parallelism() == 3
    assert env.get_config().get_auto_watermark_interval() == 50


def test_environment_parallelism_from_cli_variable(monkeypatch):
    monkeypatch.setenv("FLINKCORE_PARALLELISM", "4")
    assert StreamExecutionEnvironment.get_execution_environment().get_parallelism() == 4


def test_encoder_and_watermark():
    assert Encoder.simple_string_encoder().encode(("a", 1)) == b"('a', 1)\n"
    assert Watermark(5) == Watermark(5) and Watermark.MAX_WATERMARK.get_timestamp() == (1 << 63) - 1


def test_watermark_strategy_options_validate():
    with pytest.raises(ValueError):
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(-1))
    with pytest.raises(ValueError):
        WatermarkStrategy.for_monotonous_timestamps().with_idleness(Duration.of_millis(0))
    with pytest.raises(TypeError):
        WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(3.5)
    s = WatermarkStrategy.for_monotonous_timestamps().with_watermark_alignment("g", Duration.of_seconds(1))
    assert s.alignment == ("g", 1000, 1000)
    gen = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(10)).create_watermark_generator()
    assert isinstance(gen, BoundedOutOfOrdernessWatermarks)
    idle = (
        WatermarkStrategy.for_monotonous_timestamps()
        .with_idleness(Duration.of_seconds(1))
        .create_watermark_generator()
    )
    assert isinstance(idle, WatermarksWithIdleness)


def test_jobs_run_with_any_restart_strategy_configured():
    for strategy in (RestartStrategies.fixed_delay_restart(3, 1000), RestartStrategies.no_restart()):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_restart_strategy(strategy)
        out = env.from_collection([1, 2]).map(lambda x: x * 10).execute_and_collect()
        assert sorted(out) == [10, 20]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_restart_strategy(RestartStrategies.no_restart())
    env.from_collection([1]).map(lambda x: x).print()
    env.execute()
