"""The running service: wiring, supervision, systemd notify, metrics, health, logs, reload."""
