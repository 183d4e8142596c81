"""fastlane's five services, one package each: api, scheduler, runner, recorder, notifier.

Each has the same parts: a package docstring saying what it consumes and produces, a thin `__main__`
entrypoint, `bootstrap` (the one place that builds adapters), handlers (one table by message type where it
consumes several types; the API's routers by resource), and adapters behind `ports`. Beside them: `migrate`
(every store's tables and the topics, the one place that knows them all) and `devstack` (the five as
processes, for tests and benches)."""
