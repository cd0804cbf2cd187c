"""The household service: configuration → MQTT + miners + SQLite, driven by one clock.

`household.Service` is the wiring; `ha_bridge` maps its rooms and heaters onto MQTT state topics and Home
Assistant discovery. Both are the service's own: nothing below them (core, miners, adapters) imports them.
"""

from thermostat.service.household import HeaterRuntime, RoomRuntime, Service, ServiceTimings

__all__ = ["HeaterRuntime", "RoomRuntime", "Service", "ServiceTimings"]
