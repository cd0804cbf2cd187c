"""The vocabulary that the pure core and the miner drivers share: commands and outcomes, poll snapshots and model
specs. It imports nothing else of thermostat, so `core/` and `miners/` both depend on it and never on each other."""
