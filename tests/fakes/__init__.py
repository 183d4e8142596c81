"""Fakes of the ports (engine, ledger, store...), one module per port; each is checked against its real adapter by one contract suite in tests/contract/."""
