"""Run the real glance-api with the datera backend: the shared harness and ``./dev demo``.

``glance_env`` builds glance's own virtualenv, runs PostgreSQL and glance-api (under uwsgi) and
the EDF simulator as child processes; ``glance_client`` is a small HTTP client for the Images
API v2. The e2e tests (``tests/e2e``) and the demo (``python -m datera_glance.demo``) both use
them, so the demo works from an installed checkout without the tests.
"""
