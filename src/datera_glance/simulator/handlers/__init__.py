"""The EDF REST API's handlers, one module per resource family.

Importing this package registers every handler in ``routing.API``. A handler is a plain
function ``fn(cluster, req, *path_args)`` decorated with ``@route(method, pattern, schema_key)``;
it runs under the cluster's state lock, calls ``cluster.save(obj)`` (or ``save_removal``) for
each object it changed, and returns the ``data`` of the envelope (or a ``Listing``, or a whole
``Response``).
"""

from __future__ import annotations

from datera_glance.simulator.handlers import (
    app_instances,
    initiators,
    session,
    snapshots,
    system,
    tenants,
)

MODULES = (session, system, tenants, initiators, app_instances, snapshots)
