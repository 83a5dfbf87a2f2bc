"""The base ``Binding`` class and its registering metaclass (C-58..C-61)."""

from __future__ import annotations

from typing import Any, ClassVar

CREATE = "create"
UPDATE = "update"
DELETE = "delete"


class BindingMetaclass(type):
    """Records every binding class so the app config can connect them all at once (C-58).

    Model signals can only be connected once the app registry is ready, so classes created
    while apps load are remembered and registered by ``register_all()`` from
    ``ChannelsConfig.ready()``; later classes register as they are created.
    """

    binding_classes: ClassVar[list[type]] = []
    register_immediately: ClassVar[bool] = False

    def __new__(mcs, name: str, bases: tuple[type, ...], body: dict[str, Any]) -> type:
        klass = super().__new__(mcs, name, bases, body)
        if bases != (object,) and bases:
            if mcs.register_immediately:
                klass.register()
            else:
                mcs.binding_classes.append(klass)
        return klass

    @classmethod
    def register_all(mcs) -> None:
        """Register the recorded classes and every class created from now on (C-58)."""
        for binding_class in mcs.binding_classes:
            binding_class.register()
        mcs.register_immediately = True


class Binding(metaclass=BindingMetaclass):
    """Placeholder root class; the full implementation follows (C-59)."""

    @classmethod
    def register(cls) -> None:
        """Connect this binding's model signals (C-59)."""
