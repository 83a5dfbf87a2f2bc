"""The base ``Binding``: model signals out to groups, inbound messages in to the model.

A binding ties one model to a stream. Outbound (C-60), every save or delete of a bound model
becomes ``create``/``update``/``delete`` messages to the groups the instance belongs to,
before and after the change. Inbound (C-61), a consumer turns client messages into model
changes, subject to ``has_permission``. Wire format (``serialize``, ``encode``,
``deserialize``) is left to subclasses such as ``WebsocketBinding``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.apps import apps
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from ..channel import Group

if TYPE_CHECKING:
    from ..message import Message

CREATE = "create"
UPDATE = "update"
DELETE = "delete"

ACTIONS = (CREATE, UPDATE, DELETE)


class BindingMetaclass(type):
    """Records every binding class so the app config can connect them all at once (C-58).

    Model signals can only be connected once the app registry is ready, so classes created
    while apps load are remembered and registered by ``register_all()`` from
    ``ChannelsConfig.ready()``; classes created after that register as they are created.
    """

    binding_classes: ClassVar[list[type[Binding]]] = []
    register_immediately: ClassVar[bool] = False

    def __new__(mcs, name: str, bases: tuple[type, ...], body: dict[str, Any]) -> type:
        klass = super().__new__(mcs, name, bases, body)
        # The root `Binding` has no bases; it binds nothing and is not recorded. Every other
        # class of this metaclass derives from it.
        if bases:
            binding = cast("type[Binding]", klass)
            if mcs.register_immediately:
                binding.register()  # a misconfigured class fails here, and is not recorded
            mcs.binding_classes.append(binding)
        return klass

    @classmethod
    def register_all(mcs) -> None:
        """Register the recorded classes and every class created from now on (C-58)."""
        for binding_class in mcs.binding_classes:
            binding_class.register()
        mcs.register_immediately = True


class Binding(metaclass=BindingMetaclass):
    """Binds a model to groups (outbound) and to a consumer (inbound) (C-59).

    Subclasses set ``model`` (a class or ``"app_label.Model"``) and ``fields`` or
    ``exclude``, and implement ``group_names``, ``serialize``, ``encode``, ``deserialize``,
    ``has_permission``, ``create`` and ``update``. Writing ``model = None`` in a class body
    marks the class abstract.
    """

    model: type[Model] | str | None = None
    model_label: str
    stream: str | None = None
    fields: Iterable[str] | str | None = None
    exclude: Iterable[str] | None = None

    # Inbound handlers get `message.user` from the channel session by default (C-59).
    channel_session_user = True
    channel_session = False

    # Keyword arguments of the model signal being handled, set by `send_messages`.
    signal_kwargs: dict[str, Any] | None = None
    # Set on the instance that handles one change: outbound, the changed model instance
    # (`post_change_receiver`); inbound, the message, its route kwargs and the user
    # (`trigger_inbound`).
    instance: Model
    message: Message
    kwargs: dict[str, Any]
    user: Any

    _signals = (
        (pre_save, "pre_save_receiver"),
        (post_save, "post_save_receiver"),
        (pre_delete, "pre_delete_receiver"),
        (post_delete, "post_delete_receiver"),
    )

    # Registration

    @classmethod
    def register(cls) -> None:
        """Connect pre/post save and delete signals of the bound model (C-59)."""
        for model in cls.get_registered_models():
            for signal, receiver_name in cls._signals:
                signal.connect(getattr(cls, receiver_name), sender=model)

    @classmethod
    def unregister(cls) -> None:
        """Disconnect what ``register`` connected, e.g. for a binding defined in a test."""
        for model in cls.get_registered_models():
            for signal, receiver_name in cls._signals:
                signal.disconnect(getattr(cls, receiver_name), sender=model)

    @classmethod
    def get_registered_models(cls) -> list[type[Model]]:
        """The models whose signals this binding listens to: ``[]`` when abstract (C-59)."""
        if cls.model is None:
            if "model" in cls.__dict__:
                return []
            raise ValueError(
                f"Binding {cls.__qualname__} has no model: set `model` to a model class or "
                f"an 'app_label.Model' string (or write `model = None` to make it abstract)."
            )
        if cls.fields is None and cls.exclude is None:
            raise ValueError(
                f"Binding {cls.__qualname__} must set `fields` (a list, or '__all__') or "
                f"`exclude` to say which model fields it sends."
            )
        model = cls._model_class()
        meta = model._meta
        cls.model_label = f"{meta.app_label.lower()}.{meta.object_name.lower()}"
        return [model]

    @classmethod
    def _model_class(cls) -> type[Model]:
        """`model` as a class; an ``"app_label.Model"`` string is looked up (once)."""
        model = cls.model
        if model is None:
            raise ValueError(f"Binding {cls.__qualname__} is abstract: it has no model.")
        if isinstance(model, str):
            model = cls.model = apps.get_model(model)
        return model

    # Outbound (C-60)

    @classmethod
    def pre_save_receiver(cls, instance: Model, **kwargs: Any) -> None:
        cls.pre_change_receiver(instance, CREATE if instance._state.adding else UPDATE)

    @classmethod
    def post_save_receiver(cls, instance: Model, created: bool, **kwargs: Any) -> None:
        cls.post_change_receiver(instance, CREATE if created else UPDATE, **kwargs)

    @classmethod
    def pre_delete_receiver(cls, instance: Model, **kwargs: Any) -> None:
        cls.pre_change_receiver(instance, DELETE)

    @classmethod
    def post_delete_receiver(cls, instance: Model, **kwargs: Any) -> None:
        cls.post_change_receiver(instance, DELETE, **kwargs)

    @classmethod
    def pre_change_receiver(cls, instance: Model, action: str) -> None:
        """Remember the groups the instance was in before the change (none on create)."""
        if action == CREATE:
            old_groups = set()
        elif action == UPDATE:
            # pre_save sees the instance already changed in memory, so its groups are the
            # new ones; the stored row still has the old ones. (1.1 used the instance and
            # so never announced a move out of a group as a DELETE there.)
            stored = cls._stored_copy(instance)
            old_groups = set() if stored is None else set(cls.group_names(stored))
        else:
            old_groups = set(cls.group_names(instance))
        if not hasattr(instance, "_binding_group_names"):
            instance._binding_group_names = {}
        instance._binding_group_names[cls] = old_groups

    @staticmethod
    def _stored_copy(instance: Model) -> Model | None:
        """The instance as its database row has it now, or None if there is no row."""
        manager = type(instance)._base_manager.db_manager(instance._state.db)
        return manager.filter(pk=instance.pk).first()

    @classmethod
    def post_change_receiver(cls, instance: Model, action: str, **kwargs: Any) -> None:
        """Tell groups the instance left, stayed in and joined, in that order (C-60)."""
        # A save that skipped pre_save (never the case for Model.save) has no old groups.
        old_groups = getattr(instance, "_binding_group_names", {}).get(cls, set())
        new_groups = set() if action == DELETE else set(cls.group_names(instance))
        binding = cls()
        binding.instance = instance
        binding.send_messages(instance, old_groups - new_groups, DELETE, **kwargs)
        binding.send_messages(instance, old_groups & new_groups, UPDATE, **kwargs)
        binding.send_messages(instance, new_groups - old_groups, CREATE, **kwargs)

    def send_messages(
        self, instance: Model, group_names: set[str], action: str, **kwargs: Any
    ) -> None:
        """Send ``encode(stream, serialize(instance, action))`` to each group (C-60)."""
        if not group_names:
            return
        self.signal_kwargs = kwargs
        payload = self.serialize(instance, action)
        if payload == {}:
            return  # serialize() chose not to announce this change
        if self.stream is None:
            raise ValueError(
                f"Binding {type(self).__qualname__} has no stream: set `stream` to the name "
                f"clients demultiplex its messages by."
            )
        message = self.encode(self.stream, payload)
        for group_name in group_names:
            Group(group_name).send(message)

    @classmethod
    def group_names(cls, instance: Model) -> Iterable[str]:
        """The groups that hear about changes to ``instance``."""
        raise NotImplementedError(f"{cls.__qualname__} must implement group_names(instance)")

    @classmethod
    def encode(cls, stream: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The message sent to the groups for ``payload`` on ``stream``."""
        raise NotImplementedError(f"{cls.__qualname__} must implement encode(stream, payload)")

    def serialize(self, instance: Model, action: str) -> dict[str, Any]:
        """The payload describing ``action`` on ``instance``; ``{}`` sends nothing."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must implement serialize(instance, action)"
        )

    # Inbound (C-61)

    @classmethod
    def get_handler(cls) -> Callable[..., None]:
        """``trigger_inbound`` wrapped in the session decorators the class asks for."""
        # Imported here: channels.auth needs the app registry, and bindings are often
        # defined in models.py while it loads.
        from ..auth import channel_session_user
        from ..sessions import channel_session

        handler = cls.trigger_inbound
        if cls.channel_session_user:
            return channel_session_user(handler)
        if cls.channel_session:
            return channel_session(handler)
        return handler

    @classmethod
    def consumer(cls, message: Any, **kwargs: Any) -> None:
        """The consumer to route (or demultiplex) inbound messages to."""
        cls.get_handler()(message, **kwargs)

    @classmethod
    def trigger_inbound(cls, message: Any, **kwargs: Any) -> None:
        """Apply the change a client asked for if ``has_permission`` allows it (C-61)."""
        from django.contrib.auth.models import AnonymousUser

        binding = cls()
        binding.message = message
        binding.kwargs = kwargs
        action, pk, data = binding.deserialize(message)
        binding.user = getattr(message, "user", None) or AnonymousUser()
        if binding.has_permission(binding.user, action, pk):
            binding.run_action(action, pk, data)

    def deserialize(self, message: Any) -> tuple[str, Any, Any]:
        """``(action, pk, data)`` from an inbound message."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement deserialize()")

    def has_permission(self, user: Any, action: str, pk: Any) -> bool:
        """Whether ``user`` may perform ``action`` on the object ``pk``."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must implement has_permission(user, action, pk)"
        )

    def run_action(self, action: str, pk: Any, data: Any) -> None:
        if action == CREATE:
            self.create(data)
        elif action == UPDATE:
            self.update(pk, data)
        elif action == DELETE:
            self.delete(pk)
        else:
            raise ValueError(f"Unknown binding action {action!r}: use one of {', '.join(ACTIONS)}.")

    def create(self, data: Any) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} must implement create(data)")

    def update(self, pk: Any, data: Any) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} must implement update(pk, data)")

    def delete(self, pk: Any) -> None:
        self._model_class().objects.filter(pk=pk).delete()
