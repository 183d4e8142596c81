"""fastlane's five services, one package each with the same parts (package docstring: what it consumes and
produces; `__main__` entrypoint; `bootstrap` wiring; handlers dispatched by message type; adapters behind
`ports`): api, scheduler, runner, recorder, notifier. Beside them: `migrate` (every store's tables and the
topics, the one place that knows them all) and `devstack` (the five as processes, for tests and benches)."""
