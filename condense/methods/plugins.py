"""Third-party condensers: a distribution that declares an entry point in the group
``condense.condensers`` is found at start-up and registered like a built-in::

    [project.entry-points."condense.condensers"]
    my-method = "my_package.my_method:MyCondenser"

The entry point's name is the method's name (the class's ``name``). A plugin that fails to import,
that is not a :class:`Condenser`, or that would shadow a registered name, gets one line on stderr and
is skipped: it never stops the built-ins. A plugin's records carry its distribution's name and
version in their code identity, and its condenser hash covers its own module's source.
"""
from __future__ import annotations

from importlib import metadata

from .._log import note, one_line
from .base import Condenser, register_condenser, registered

GROUP = "condense.condensers"


def load_plugins() -> list[str]:
    """Register every condenser declared in the ``condense.condensers`` entry-point group; returns the
    names registered now."""
    added = []
    for ep in metadata.entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        origin = f"{dist.name} {dist.version}" if dist is not None else ep.value
        if registered(ep.name) is not None and registered(ep.name).distribution is None:
            note(f"plugin condenser {ep.name!r} ({origin}) shadows the built-in of that name; skipped")
            continue
        try:
            cls = ep.load()
        except Exception as e:  # a broken plugin must not stop the suite: any failure is reported and skipped
            note(f"plugin condenser {ep.name!r} ({origin}) failed to import ({type(e).__name__}: {one_line(e)[:200]}); skipped")
            continue
        if not (isinstance(cls, type) and issubclass(cls, Condenser)) or cls.name != ep.name:
            note(f"plugin condenser {ep.name!r} ({origin}): {ep.value} is not a Condenser named {ep.name!r}; skipped")
            continue
        cls.distribution = origin
        if registered(cls.name) is not cls:
            try:
                register_condenser(cls)
            except ValueError as e:
                note(f"plugin condenser {ep.name!r} ({origin}): {one_line(e)[:200]}; skipped")
                continue
        added.append(cls.name)
    return added
