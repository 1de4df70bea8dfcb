"""Signals of the equipment catalogue, for apps above it (the app layers forbid equipment to import them)."""

from django.dispatch import Signal

#: Sent inside the transaction of a change to a piece of equipment's fields that tasks render
#: (``EquipmentBriefSerializer``), with ``equipment_id``: the tasks that list it render differently now, and
#: ``jobs`` records them in the change feed in the same transaction.
equipment_rendering_changed = Signal()
