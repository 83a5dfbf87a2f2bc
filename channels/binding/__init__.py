"""Data binding: model changes out to groups, inbound messages in to the model (C-58..C-63)."""

from .base import Binding, BindingMetaclass

__all__ = ["Binding", "BindingMetaclass"]
