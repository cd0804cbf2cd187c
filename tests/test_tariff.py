"""Time-of-use tariffs (thermostat.core.tariff), the cost KPI, and the tariff in the config and the scenario."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from thermostat.config import ConfigError, load_config
from thermostat.core.kpi import Kpi
from thermostat.core.tariff import DynamicPrice, Tariff, TariffError, tariff_from_data
from thermostat.sim.scenario import ScenarioError, load_scenario

BERLIN = ZoneInfo("Europe/Berlin")
WEEK = {
    "mon-fri": [{"at": "06:00", "price": 0.38}, {"at": "22:00", "price": 0.22}],
    "sat-sun": [{"at": "00:00", "price": 0.20}],
}


def test_prices_per_block_with_carry_over_midnight() -> None:
    t = Tariff.from_week(WEEK, BERLIN)
    mon = datetime(2026, 1, 5, tzinfo=BERLIN)  # a Monday
    assert t.price_at(mon.replace(hour=3)) == 0.20  # Monday 03:00: Sunday's last price carries over
    assert t.price_at(mon.replace(hour=6)) == 0.38
    assert t.price_at(mon.replace(hour=21, minute=59)) == 0.38
    assert t.price_at(mon.replace(day=6, hour=3)) == 0.22  # Tuesday 03:00: Monday's 22:00 block
    assert t.price_at(datetime(2026, 1, 10, 12, tzinfo=BERLIN)) == 0.20
    # an instant in another zone is converted to the tariff's wall time
    assert t.price_at(datetime(2026, 1, 5, 5, 30, tzinfo=UTC)) == 0.38  # 06:30 in Berlin


def test_changes_lists_each_change_once_across_days_and_dst() -> None:
    t = Tariff.from_week({"daily": [{"at": "00:00", "price": 0.1}, {"at": "02:30", "price": 0.3}]}, BERLIN)
    start = datetime(2026, 3, 28, 12, tzinfo=BERLIN)  # the DST night 29 March: 02:30 does not exist
    changes = t.changes(start, datetime(2026, 3, 30, 12, tzinfo=BERLIN))
    assert changes[0] == (start, 0.3)
    prices = [p for _, p in changes]
    assert all(a != b for a, b in itertools.pairwise(prices))
    assert [w.astimezone(BERLIN).day for w, _ in changes[1:]] == [29, 29, 30, 30]


def test_bad_tariffs_list_every_problem() -> None:
    with pytest.raises(TariffError) as err:
        Tariff.from_week({"mon-fri": [{"at": "25:00", "price": 0.2}, {"at": "06:00", "price": -1}],
                          "sat": [{"at": "00:00"}], "fri": [{"at": "00:00", "price": 0.1}]})
    text = str(err.value)
    assert "not a time of day" in text and "outside 0..100" in text and "{at" in text
    assert "fri is given twice" in text and "no prices for sun" in text
    with pytest.raises(TariffError, match="increasing time order"):
        Tariff.from_week({"daily": [{"at": "08:00", "price": 0.2}, {"at": "06:00", "price": 0.3}]})
    assert tariff_from_data({"price_per_kwh": 0.3}).price_at(datetime(2026, 1, 1, tzinfo=UTC)) == 0.3
    assert tariff_from_data({"daily": [{"at": "00:00", "price": 0.25}]}).days[3] == ((0, 0.25),)


def test_dynamic_price_expires_and_rejects_garbage() -> None:
    d = DynamicPrice(max_age_s=600.0)
    assert d.current(0.0) is None
    d.offer(0.0, 0.31)
    assert d.current(599.0) == 0.31
    assert d.current(601.0) is None
    for bad in (float("nan"), -0.1, 1e6):
        with pytest.raises(ValueError):
            d.offer(700.0, bad)
    assert d.price == 0.31  # a rejected price changes nothing


def test_kpi_cost_is_the_priced_energy() -> None:
    kpi = Kpi()
    kpi.add(0.0, 20.0, 21.0, 1000.0, 0.0, price_per_kwh=0.2)
    kpi.add(3600.0, 20.0, 21.0, 1000.0, 0.0, price_per_kwh=0.2)  # 1 kWh at 0.2
    kpi.add(7200.0, 20.0, 21.0, 1000.0, 0.0, price_per_kwh=0.5)  # 1 kWh at 0.5
    result = kpi.result()
    assert result.energy_kwh == pytest.approx(2.0)
    assert result.cost == pytest.approx(0.7)
    unpriced = Kpi()
    unpriced.add(0.0, 20.0, 21.0, 1000.0, 0.0)
    unpriced.add(60.0, 20.0, 21.0, 1000.0, 0.0)
    assert unpriced.result().cost is None


def _config(tmp_path: Path, tariff: str) -> Path:
    path = tmp_path / "house.yaml"
    path.write_text(f"""\
rooms:
  living:
    sensor: {{topic: zigbee2mqtt/living}}
    target: 21
    heaters: [mini]
heaters:
  mini: {{host: 192.0.2.10, model: mini3}}
{tariff}
""")
    return path


def test_config_tariff_week_and_errors(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, """\
tariff:
  timezone: Europe/Berlin
  price_topic: energy/price
  week:
    daily: [{at: "00:00", price: 0.18}, {at: "17:00", price: 0.48}]
outdoor: {topic: weather/outdoor, forecast_topic: weather/forecast}"""))
    assert cfg.tariff is not None and cfg.tariff.price_topic == "energy/price"
    assert cfg.tariff.build().price_at(datetime(2026, 1, 5, 18, tzinfo=BERLIN)) == 0.48
    assert cfg.rooms["living"].control.mode == "mpc"  # the default for a new config
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, """\
tariff:
  week:
    daily: [{at: "7:61", price: 0.18}]"""))
    assert "house.yaml:" in str(err.value) and "tariff" in str(err.value) and "not a time of day" in str(err.value)
    with pytest.raises(ConfigError, match="exactly one of"):
        load_config(_config(tmp_path, "tariff: {currency: EUR}"))


def test_scenario_tariff_is_validated(tmp_path: Path) -> None:
    sc = load_scenario(Path(__file__).parent / "data" / "tariff_week.yaml")
    assert sc.tariff is not None
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nduration_h: 1\nheaters: [{model: mini3}]\ntariff: {daily: [{at: '00:00'}]}\n")
    with pytest.raises(ScenarioError, match="tariff"):
        load_scenario(bad)


def test_energy_command_prices_each_instant_by_its_block(tmp_path: Path) -> None:
    from thermostat.commands.history import _price_at

    cfg = load_config(_config(tmp_path, """\
tariff:
  timezone: Europe/Berlin
  week: {daily: [{at: "00:00", price: 0.18}, {at: "17:00", price: 0.48}]}"""))
    assert cfg.tariff is not None
    price = _price_at(cfg.tariff)
    assert price(datetime(2026, 1, 5, 16, 1, tzinfo=UTC).timestamp()) == 0.48  # 17:01 in Berlin
    assert price(datetime(2026, 1, 5, 15, 59, tzinfo=UTC).timestamp()) == 0.18  # 16:59 in Berlin
    assert price(datetime(2026, 1, 5, 3, tzinfo=UTC).timestamp()) == 0.18
    flat = load_config(_config(tmp_path, "tariff: {price_per_kwh: 0.3}")).tariff
    assert flat is not None and _price_at(flat)(0.0) == 0.3
