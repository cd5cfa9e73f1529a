"""JSON values to Flyte literals, with flyteidl only (the hub need not install flytekit).

A gate node's signal has a literal type, fixed when the workflow was compiled and carried on the
event (``source.params["literal_type"]``, the ``LiteralType`` message as JSON). flyteadmin
refuses a value whose literal type is not castable to it, so the value is built for that type.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["literal_for", "placeholder_for", "type_name"]


def _types() -> Any:
    from flyteidl.core import literals_pb2, types_pb2

    return literals_pb2, types_pb2


def _literal_type(literal_type: dict[str, Any]) -> Any:
    from google.protobuf.json_format import ParseDict

    _, types_pb2 = _types()
    return ParseDict(literal_type, types_pb2.LiteralType())


def type_name(literal_type: dict[str, Any]) -> str:
    """A short name of a literal type for messages: ``INTEGER``, ``[STRING]``, ``STRUCT``."""
    if "collectionType" in literal_type:
        return f"[{type_name(literal_type['collectionType'])}]"
    return str(literal_type.get("simple", json.dumps(literal_type, sort_keys=True)))


def literal_for(literal_type: dict[str, Any], value: Any) -> Any:
    """The ``flyteidl.core.Literal`` for a JSON ``value`` of ``literal_type``.

    Raises:
        ValueError: the value does not fit the type, or the type is not one signoff asks for.
    """
    literals_pb2, types_pb2 = _types()
    lt = _literal_type(literal_type)
    which = lt.WhichOneof("type")
    if which == "collection_type":
        if not isinstance(value, list):
            raise ValueError(f"expected a list for {type_name(literal_type)}, got {value!r}")
        inner = literal_type["collectionType"]
        return literals_pb2.Literal(collection=literals_pb2.LiteralCollection(
            literals=[literal_for(inner, item) for item in value]))
    if which != "simple":
        raise ValueError(f"signoff answers gates of simple and list types, not {literal_type}")
    simple = lt.simple
    primitive: Any
    if simple == types_pb2.BOOLEAN and isinstance(value, bool):
        primitive = literals_pb2.Primitive(boolean=value)
    elif simple == types_pb2.INTEGER and isinstance(value, int) and not isinstance(value, bool):
        primitive = literals_pb2.Primitive(integer=value)
    elif (simple == types_pb2.FLOAT and isinstance(value, (int, float))
          and not isinstance(value, bool)):
        primitive = literals_pb2.Primitive(float_value=float(value))
    elif simple == types_pb2.STRING and isinstance(value, str):
        primitive = literals_pb2.Primitive(string_value=value)
    elif simple == types_pb2.STRUCT and isinstance(value, dict):
        return literals_pb2.Literal(scalar=_struct_scalar(value))
    else:
        raise ValueError(f"expected a value of type {type_name(literal_type)}, got {value!r}")
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=primitive))


def _struct_scalar(value: dict[str, Any]) -> Any:
    literals_pb2, _ = _types()
    try:
        import msgpack
    except ImportError:  # flytekit reads a generic struct as well
        from google.protobuf.struct_pb2 import Struct

        struct = Struct()
        struct.update(value)
        return literals_pb2.Scalar(generic=struct)
    # flytekit 1.14+ writes dicts as msgpack; match it so its transformer reads the same bytes
    return literals_pb2.Scalar(binary=literals_pb2.Binary(value=msgpack.dumps(value),
                                                          tag="msgpack"))


def placeholder_for(literal_type: dict[str, Any]) -> Any:
    """A value of the type that carries nothing: sent to let a gate pass when the event ended
    without an answer (rejected, expired, cancelled); the settle task after it fails the node.
    """
    if "collectionType" in literal_type:
        return literal_for(literal_type, [])
    simple = literal_type.get("simple")
    empty = {"BOOLEAN": False, "INTEGER": 0, "FLOAT": 0.0, "STRING": "", "STRUCT": {}}
    if simple not in empty:
        raise ValueError(f"signoff answers gates of simple and list types, not {literal_type}")
    return literal_for(literal_type, empty[simple])
