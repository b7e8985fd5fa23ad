"""Device profiles: believable, seeded signals and documents for simulated devices. Pure, no I/O.

A profile turns a device's private state, a simulated time and a ``random.Random`` into readings
and documents. Every numeric field is always a float (never an int) so a field keeps one type in
the time-series store; values are rounded so their JSON text round-trips exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

FieldValue = float | bool | str
Fields = dict[str, FieldValue]


@dataclass(slots=True)
class Alarm:
    """An anomaly seen in a reading, reported by the device's next message as an event."""

    level: str
    code: str
    message: str


@dataclass(slots=True)
class DeviceState:
    """What a simulated device remembers between messages."""

    device_id: str
    boot_s: float
    drift: float = 0.0
    energy_kwh: float = 0.0
    battery: float = 100.0
    firmware: tuple[int, int, int] = (1, 0, 0)
    config: dict[str, Any] = field(default_factory=dict)
    last_telemetry_s: float | None = None
    alarm: Alarm | None = None
    site: str = "site-a"


def _daily(t_s: float, peak_hour: float) -> float:
    """A cosine day cycle in [-1, 1], +1 at ``peak_hour`` UTC."""
    hour = (t_s % 86400) / 3600
    return math.cos(2 * math.pi * (hour - peak_hour) / 24)


def _r(x: float, digits: int = 2) -> float:
    return float(round(x, digits))


class Profile:
    """Base profile: metrics, events, firmware and maintenance shared by every device type."""

    name: ClassVar[str] = ""
    units: ClassVar[dict[str, str]] = {}
    battery_powered: ClassVar[bool] = True
    metric_units: ClassVar[dict[str, str]] = {
        "cpu": "%",
        "memory": "%",
        "battery": "%",
        "rssi": "dBm",
        "uptime": "s",
    }
    info_events: ClassVar[tuple[tuple[str, str], ...]] = (
        ("I100", "heartbeat"),
        ("I110", "sensor self-test passed"),
        ("I120", "time synchronised"),
        ("I130", "reading buffer flushed"),
    )
    maintenance_types: ClassVar[tuple[str, ...]] = ("inspection", "cleaning", "calibration")

    def new_state(self, device_id: str, t_s: float, rng: random.Random) -> DeviceState:
        state = DeviceState(
            device_id=device_id,
            boot_s=t_s - rng.uniform(60, 86400 * 3),
            battery=_r(rng.uniform(55, 100), 1) if self.battery_powered else 100.0,
            firmware=(1, rng.randint(0, 4), rng.randint(0, 9)),
            site=f"site-{'abc'[rng.randrange(3)]}",
        )
        state.config = self.config(state, rng, initial=True)
        return state

    # -- time series ---------------------------------------------------------------------
    def telemetry(self, state: DeviceState, t_s: float, rng: random.Random) -> Fields:
        raise NotImplementedError

    def metrics(self, state: DeviceState, t_s: float, rng: random.Random) -> Fields:
        if self.battery_powered:
            state.battery = max(5.0, state.battery - rng.uniform(0.0, 0.05))
        fields: Fields = {
            "cpu": _r(min(100.0, max(0.5, rng.gauss(18, 6))), 1),
            "memory": _r(min(100.0, max(5.0, rng.gauss(42, 3))), 1),
        }
        if self.battery_powered:
            fields["battery"] = _r(state.battery, 1)
        fields["rssi"] = _r(min(-30.0, rng.gauss(-67, 5)), 0)
        fields["uptime"] = _r(max(0.0, t_s - state.boot_s), 0)
        return fields

    def event(self, state: DeviceState, rng: random.Random) -> tuple[str, str, str]:
        """(level, code, message): the pending alarm first, else mostly info, rarely debug."""
        if state.alarm is not None:
            alarm, state.alarm = state.alarm, None
            return alarm.level, alarm.code, alarm.message
        if self.battery_powered and state.battery < 20 and rng.random() < 0.5:
            return "warning", "W201", f"battery low: {state.battery:.0f}%"
        code, message = rng.choice(self.info_events)
        return ("debug" if rng.random() < 0.1 else "info"), code, message

    # -- documents -----------------------------------------------------------------------
    def config(self, state: DeviceState, rng: random.Random, initial: bool) -> dict[str, Any]:
        return {"sample_interval_s": float(rng.choice((1, 5, 10, 30, 60))), "site": state.site}

    def firmware(self, state: DeviceState, rng: random.Random, initial: bool) -> dict[str, Any]:
        previous = ".".join(map(str, state.firmware))
        if not initial:
            major, minor, patch = state.firmware
            bump_minor = rng.random() < 0.3
            state.firmware = (major, minor + 1, 0) if bump_minor else (major, minor, patch + 1)
        version = ".".join(map(str, state.firmware))
        return {
            "version": version,
            "previous_version": None if initial else previous,
            "status": "running" if initial else "update_succeeded",
            "hardware": f"{self.name}-hw-rev{1 + sum(map(ord, state.device_id)) % 3}",
            "image_sha256": f"{rng.getrandbits(256):064x}",
            "channel": "stable",
        }

    def maintenance(self, state: DeviceState, t_s: float, rng: random.Random) -> dict[str, Any]:
        kind = rng.choice(self.maintenance_types + (("battery_replacement",) if self.battery_powered else ()))
        if kind == "battery_replacement":
            state.battery = 100.0
        return {
            "type": kind,
            "technician": f"tech-{rng.randint(1, 24):02d}",
            "result": rng.choice(("ok", "ok", "ok", "adjusted", "parts_replaced")),
            "duration_min": float(rng.choice((10, 15, 20, 30, 45, 60))),
            "next_due_days": float(rng.choice((30, 90, 180, 365))),
            "notes": f"{kind.replace('_', ' ')} at {state.site}",
        }


class Thermostat(Profile):
    name = "thermostat"
    units: ClassVar[dict[str, str]] = {
        "temperature": "Cel",
        "humidity": "%RH",
        "setpoint": "Cel",
        "heating": "",
    }

    def telemetry(self, state: DeviceState, t_s: float, rng: random.Random) -> Fields:
        state.drift = max(-1.5, min(1.5, state.drift + rng.gauss(0, 0.002)))
        base = float(state.config.get("setpoint", 21.0))
        temp = base - 0.8 + 2.5 * _daily(t_s, 15) + state.drift + rng.gauss(0, 0.15)
        humidity = 45 - 1.2 * (temp - 21) + 4 * _daily(t_s, 5) + rng.gauss(0, 0.8)
        if temp > base + 3.2:
            state.alarm = Alarm("warning", "W310", f"temperature {temp:.1f} C above setpoint")
        return {
            "temperature": _r(temp),
            "humidity": _r(min(100.0, max(0.0, humidity)), 1),
            "setpoint": _r(base, 1),
            "heating": temp < base - 0.5,
        }

    def config(self, state: DeviceState, rng: random.Random, initial: bool) -> dict[str, Any]:
        doc = super().config(state, rng, initial)
        doc |= {
            "setpoint": _r(rng.choice((19.0, 20.0, 20.5, 21.0, 21.5, 22.0)), 1),
            "mode": rng.choice(("heat", "auto", "eco")),
            "hysteresis": 0.5,
        }
        return doc


class Vibration(Profile):
    name = "vibration"
    units: ClassVar[dict[str, str]] = {
        "rms_velocity": "mm/s",
        "peak_velocity": "mm/s",
        "frequency": "Hz",
    }
    maintenance_types = ("inspection", "bearing_lubrication", "alignment_check", "sensor_remount")

    def telemetry(self, state: DeviceState, t_s: float, rng: random.Random) -> Fields:
        state.drift = min(3.0, state.drift + abs(rng.gauss(0, 0.0005)))  # slow bearing wear
        rms = 1.8 + state.drift + 0.3 * _daily(t_s, 13) + abs(rng.gauss(0, 0.15))
        if rng.random() < 0.01:
            rms *= rng.uniform(4, 8)
            level = "error" if rms > 12 else "warning"
            state.alarm = Alarm(level, "E501" if level == "error" else "W501", f"vibration spike: rms {rms:.2f} mm/s")
        peak = rms * rng.uniform(1.4, 3.0)
        return {
            "rms_velocity": _r(rms, 3),
            "peak_velocity": _r(peak, 3),
            "frequency": _r(49.9 + rng.gauss(0, 0.05) + 0.05 * _daily(t_s, 19), 3),
        }

    def config(self, state: DeviceState, rng: random.Random, initial: bool) -> dict[str, Any]:
        doc = super().config(state, rng, initial)
        doc |= {
            "alarm_rms_mm_s": _r(rng.choice((7.1, 11.0, 18.0)), 1),
            "axis": "xyz",
            "window_ms": float(rng.choice((500, 1000, 2000))),
        }
        return doc


class EnergyMeter(Profile):
    name = "energy"
    battery_powered = False
    units: ClassVar[dict[str, str]] = {
        "power": "W",
        "voltage": "V",
        "current": "A",
        "energy": "kWh",
    }
    maintenance_types = ("inspection", "seal_check", "firmware_audit")

    def telemetry(self, state: DeviceState, t_s: float, rng: random.Random) -> Fields:
        dt = 0.0 if state.last_telemetry_s is None else max(0.0, t_s - state.last_telemetry_s)
        state.last_telemetry_s = t_s
        load = 900 + 600 * max(0.0, _daily(t_s, 8)) ** 3 + 1100 * max(0.0, _daily(t_s, 19)) ** 4
        power = max(30.0, load * (1 + rng.gauss(0, 0.05)))
        voltage = 230 + rng.gauss(0, 1.2)
        if rng.random() < 0.005:
            voltage -= rng.uniform(20, 35)
            state.alarm = Alarm("warning", "W610", f"voltage sag: {voltage:.1f} V")
        state.energy_kwh += power * dt / 3.6e6
        return {
            "power": _r(power, 1),
            "voltage": _r(voltage, 2),
            "current": _r(power / voltage / 0.95, 3),
            "energy": _r(state.energy_kwh, 6),
        }

    def new_state(self, device_id: str, t_s: float, rng: random.Random) -> DeviceState:
        state = super().new_state(device_id, t_s, rng)
        state.energy_kwh = _r(rng.uniform(100, 20000), 3)
        return state

    def config(self, state: DeviceState, rng: random.Random, initial: bool) -> dict[str, Any]:
        doc = super().config(state, rng, initial)
        doc |= {
            "ct_ratio": float(rng.choice((50, 100, 200))),
            "phases": 1.0,
            "tariff": rng.choice(("flat", "peak_offpeak")),
        }
        return doc


class AirQuality(Profile):
    name = "air_quality"
    units: ClassVar[dict[str, str]] = {"co2": "ppm", "pm25": "ug/m3", "temperature": "Cel"}
    maintenance_types = ("inspection", "filter_replacement", "calibration")

    def telemetry(self, state: DeviceState, t_s: float, rng: random.Random) -> Fields:
        occupancy = max(0.0, _daily(t_s, 14)) ** 2
        co2 = 420 + 650 * occupancy + rng.gauss(0, 25)
        if rng.random() < 0.008:
            co2 += rng.uniform(700, 1400)
            state.alarm = Alarm("warning", "W720", f"CO2 high: {co2:.0f} ppm")
        pm25 = rng.lognormvariate(2.0, 0.35) + 6 * occupancy
        return {
            "co2": _r(max(380.0, co2), 0),
            "pm25": _r(pm25, 1),
            "temperature": _r(21 + 1.5 * occupancy + rng.gauss(0, 0.2)),
        }

    def config(self, state: DeviceState, rng: random.Random, initial: bool) -> dict[str, Any]:
        doc = super().config(state, rng, initial)
        doc |= {"co2_alarm_ppm": float(rng.choice((1000, 1200, 1500))), "fan": rng.choice(("auto", "low", "high"))}
        return doc


PROFILES: dict[str, Profile] = {p.name: p for p in (Thermostat(), Vibration(), EnergyMeter(), AirQuality())}
