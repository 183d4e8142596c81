"""One contract test suite per port, run against both the fake (tests/fakes/) and the real adapter."""
