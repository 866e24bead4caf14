"""``Actor.may`` (for showing links and buttons) agrees with ``Actor.require`` (which enforces) everywhere."""

from __future__ import annotations

import pytest

from civicshare.access import Actor, Permission, Role
from civicshare.errors import PermissionDenied


@pytest.mark.parametrize("role", list(Role))
def test_may_is_true_exactly_where_require_lets_the_actor_through(role: Role) -> None:
    actor = Actor("north-wold", "someone", role)
    for permission in Permission:
        try:
            actor.require(permission, "do it")
            allowed = True
        except PermissionDenied:
            allowed = False
        assert actor.may(permission) is allowed, (role, permission)


def test_only_a_dpo_may_sign() -> None:
    assert [r for r in Role if Actor("o", "n", r).may(Permission.AGREEMENTS_SIGN)] == [Role.DPO]
