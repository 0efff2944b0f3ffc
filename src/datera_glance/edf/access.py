"""Who may reach a storage instance: host initiators, the ACL and CHAP.

``AccessControl`` is the part of ``EdfClient`` the attacher uses; it makes its calls through
the client's ``ApiSession`` and knows nothing of app instance life cycles or HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from datera_glance.edf import errors, models
from datera_glance.edf.routes import INITIATORS, AiRef, acl_route, initiator_route, si_route
from datera_glance.edf.session import ApiSession

__all__ = ["AccessControl"]

LOG = logging.getLogger(__name__)


def _acl(data: Any) -> models.AclPolicy:
    return models.AclPolicy.from_json(data or {})


class AccessControl:
    """Initiators, ACL and CHAP through one ``ApiSession`` (``EdfClient``'s base)."""

    def __init__(self, api: ApiSession) -> None:
        self._api = api
        self._no_acl_member_op = False  # set once the cluster answered "no such route"

    def get_initiator(self, iqn: str) -> models.Initiator | None:
        """The initiator as seen from the tenant (on v2.2 possibly a parent's), or None."""
        try:
            return self._api.call("GET", initiator_route(iqn), models.Initiator.from_json)
        except errors.NotFound:
            return None

    def ensure_initiator(self, iqn: str, name: str) -> models.Initiator:
        """Register the host initiator in the tenant unless it is there already.

        On v2.2 initiators are tenant-scoped: one visible from a parent tenant gets an
        in-tenant copy, which the server accepts only with ``force``. v2.1 never gets
        ``force`` (its schema rejects unknown fields).
        """
        found = self.get_initiator(iqn)
        scoped = self._api.capabilities.tenant_initiators
        if found is not None and (not scoped or found.tenant == self._api.config.tenant):
            return found
        body: dict[str, Any] = {"id": iqn, "name": name}
        if scoped and found is not None:
            body["force"] = True

        def existing() -> dict[str, Any] | None:
            raw: dict[str, Any] | None = self._api.request("GET", initiator_route(iqn))
            return raw

        try:
            data = self._api.request("POST", INITIATORS, body, on_retried_conflict=existing)
            return self._api.parsed("POST", INITIATORS, models.Initiator.from_json, data)
        except errors.Conflict:
            again = self.get_initiator(iqn)
            if again is None:
                raise
            return again
        except errors.InvalidRequest as exc:
            if not scoped or "force" in body or "override" not in exc.message.lower():
                raise
            body["force"] = True  # the server wants the tenant warning overridden
            data = self._api.request("POST", INITIATORS, body, on_retried_conflict=existing)
        return self._api.parsed("POST", INITIATORS, models.Initiator.from_json, data)

    def get_acl(self, ai: AiRef, *, si: str = "storage-1") -> list[str]:
        """Initiator paths in the storage instance's ACL."""
        return list(self._api.call("GET", acl_route(ai, si), _acl).initiators)

    def _modify_acl(self, ai: AiRef, si: str, change: Callable[[list[str]], list[str]]) -> None:
        # The fallback for clusters without the member operation. EDF has no conditional
        # update, so a concurrent change can be lost; PUT the full lists so groups are kept.
        route = acl_route(ai, si)
        acl = self._api.call("GET", route, _acl)
        initiators = list(acl.initiators)
        wanted = change(list(initiators))
        if wanted == initiators:
            return
        body = {
            "initiators": [{"path": p} for p in wanted],
            "initiator_groups": [{"path": p} for p in acl.groups],
        }
        self._api.request("PUT", route, body)

    def _acl_member(self, ai: AiRef, si: str, op: str, initiator_path: str) -> bool:
        """EDF's atomic ACL member operation; False if the cluster does not have it.

        :raises errors.Conflict: ``add`` of an entry already present.
        :raises errors.NotFound: ``remove`` of an absent entry, or no such app instance.
        """
        if self._no_acl_member_op:
            return False
        try:
            members = acl_route(ai, si, "/initiators")
            self._api.request("PUT", members, {"op": op, "path": initiator_path})
        except (errors.NotFound, errors.InvalidRequest) as exc:
            # Only the route itself missing means "no member operation": a 404 NotFoundError
            # is about the app instance or the entry, a 400/422 about the request.
            if not (exc.status == 405 or (exc.status == 404 and exc.name == "InvalidRouteError")):
                raise
            LOG.warning(
                "EDF %s has no atomic ACL member operation (%s); falling back to rewriting "
                "the whole ACL, which can lose a concurrent change",
                self._api.config.base_url,
                exc,
            )
            self._no_acl_member_op = True
            return False
        return True

    def add_acl_initiator(self, ai: AiRef, initiator_path: str, *, si: str = "storage-1") -> None:
        """Allow an initiator (``/initiators/<iqn>``) on the storage instance; idempotent.

        Atomic (``op: add``), so hosts adding themselves at once keep each other's entries.
        """
        try:
            if self._acl_member(ai, si, "add", initiator_path):
                return
        except errors.Conflict:
            return  # already present
        self._modify_acl(
            ai, si, lambda paths: paths if initiator_path in paths else [*paths, initiator_path]
        )

    def set_chap(self, ai: AiRef, username: str, password: str, *, si: str = "storage-1") -> None:
        """Require CHAP on the storage instance's target with these credentials."""
        body = {"type": "chap", "target_user_name": username, "target_pswd": password}
        self._api.request("PUT", si_route(ai, si, "/auth"), body, secrets=(password,))

    def clear_chap(self, ai: AiRef, *, si: str = "storage-1") -> None:
        """Stop requiring CHAP on the storage instance's target."""
        self._api.request("PUT", si_route(ai, si, "/auth"), {"type": "none"})
