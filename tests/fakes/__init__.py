"""Fakes of the ports (engine, ledger, store...), one module per port.

Each is checked against its real adapter by one contract suite in tests/contract/."""
