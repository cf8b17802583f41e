"""The gRPC control plane: ``python server.py api``.

Servicers are thin: a request is turned into plain values (``convert``),
validated with marshmallow (``requests``), handed to the core (``Control``,
the store, ``DeadLetters``), and the answer turned back into messages. Every
error becomes a status in one function (``errors.status_for``).
"""
