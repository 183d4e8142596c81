"""A runner serves one Docker host: it runs the containers of ExecutionDue events and reports on them."""
