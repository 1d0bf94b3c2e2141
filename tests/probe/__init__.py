"""The probe: local mode under load, a Qomon outage and a search of every log line
(`make probe`, `make probe-quick`; run.py says what it does)."""
