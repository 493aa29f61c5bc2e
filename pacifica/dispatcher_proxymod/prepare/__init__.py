"""Preparing an upload before it is made: ``pack`` writes the event and ``check`` checks one."""
