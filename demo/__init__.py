"""Run the real glance-api with the datera backend: the shared harness and ``./dev demo``.

``glance_env`` builds glance's own virtualenv, runs PostgreSQL and glance-api (under uwsgi) and
the EDF simulator as child processes; ``glance_client`` is a small HTTP client for the Images
API v2. The e2e tests (``tests/e2e``) and the demo (``python -m demo`` from the checkout's top
directory) both use them, so the demo works from a checkout without the tests. It is not in the
wheel: a glance-api host runs the driver, the CLI and the simulator, never this harness.
"""
